/** The gateway's copy of model values follows the notifications exactly as Redis holds the values. */
import { describe, expect, it } from 'vitest';
import { ModelCache } from '../../runtime/gateway/modelCache.js';
import type { ValueRecord } from '../../runtime/domain/telemetry.js';
import type { VoltageRedis } from '../../runtime/redis/voltageRedis.js';

function cacheWith(initial: Record<string, ValueRecord>) {
  const redis = { telemetry: { modelValues: async () => new Map(Object.entries(initial)) } } as unknown as VoltageRedis;
  return new ModelCache(redis, ['pv1']);
}

describe('ModelCache', () => {
  it('is not used before it is loaded, then follows value, quality-only and calculated updates', async () => {
    const cache = cacheWith({ P: { value: 1, ts: 10, quality: 'good' } });
    expect(cache.get('pv1')).toBeUndefined();
    await cache.load();
    expect(cache.get('pv1')!.get('P')).toEqual({ value: 1, ts: 10, quality: 'good' });
    cache.apply('pv1', { ts: 20, v: { P: 2, Q: 3 }, q: { Q: 'stale' } });
    expect(cache.get('pv1')!.get('P')).toEqual({ value: 2, ts: 20, quality: 'good' });
    expect(cache.get('pv1')!.get('Q')).toEqual({ value: 3, ts: 20, quality: 'stale' });
    // A quality-only mark (the device stopped answering) keeps the last value, as c2m does in Redis.
    expect(cache.apply('pv1', { ts: 30, v: {}, q: { P: 'comm-failure' } })).toEqual({ P: { value: 2, ts: 30, quality: 'comm-failure' } });
    expect(cache.get('pv1')!.get('P')).toEqual({ value: 2, ts: 30, quality: 'comm-failure' });
    expect(cache.apply('other', { ts: 40, v: { X: 1 } })).toBeUndefined();
    expect(cache.get('other')).toBeUndefined();
  });
});
