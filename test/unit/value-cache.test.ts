/** The gateway's copy of model values follows the notifications exactly as Redis holds the values. */
import { describe, expect, it } from 'vitest';
import { channelChanges, modelChanges, ValueCache } from '../../runtime/gateway/valueCache.js';
import type { ValueRecord } from '../../runtime/domain/telemetry.js';

function cacheWith(initial: Record<string, ValueRecord>) {
  return new ValueCache(async () => new Map(Object.entries(initial)), ['pv1']);
}

describe('ValueCache', () => {
  it('is not used before it is loaded, then follows value, quality-only and calculated updates', async () => {
    const cache = cacheWith({ P: { value: 1, ts: 10, quality: 'good' } });
    expect(cache.get('pv1')).toBeUndefined();
    await cache.load();
    expect(cache.get('pv1')!.get('P')).toEqual({ value: 1, ts: 10, quality: 'good' });
    cache.apply('pv1', 20, modelChanges({ ts: 20, v: { P: 2, Q: 3 }, q: { Q: 'stale' } }));
    expect(cache.get('pv1')!.get('P')).toEqual({ value: 2, ts: 20, quality: 'good' });
    expect(cache.get('pv1')!.get('Q')).toEqual({ value: 3, ts: 20, quality: 'stale' });
    // A quality-only mark (the device stopped answering) keeps the last value, as c2m does in Redis.
    expect(cache.apply('pv1', 30, modelChanges({ ts: 30, v: {}, q: { P: 'comm-failure' } }))).toEqual({ P: { value: 2, ts: 30, quality: 'comm-failure' } });
    expect(cache.get('pv1')!.get('P')).toEqual({ value: 2, ts: 30, quality: 'comm-failure' });
    expect(cache.apply('other', 40, modelChanges({ ts: 40, v: { X: 1 } }))).toBeUndefined();
    expect(cache.get('other')).toBeUndefined();
  });

  it('follows channel notifications: the time and the points text', async () => {
    const cache = cacheWith({ 'm:1': { value: 5, ts: 10, quality: 'good' } });
    await cache.load();
    const { ts, changes } = channelChanges('20\nm 1 6.000000 \nm 2  comm-failure\n');
    expect(cache.apply('pv1', ts, changes)).toEqual({ 'm:1': { value: 6, ts: 20, quality: 'good' }, 'm:2': { value: null, ts: 20, quality: 'comm-failure' } });
    const mark = channelChanges('30\nm 1  stale\n');
    expect(cache.apply('pv1', mark.ts, mark.changes)).toEqual({ 'm:1': { value: 6, ts: 30, quality: 'stale' } });
  });
});
