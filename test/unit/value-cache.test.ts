/** The gateway's copy of model values follows the notifications exactly as Redis holds the values. */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { C2mBatch } from '../../runtime/domain/c2mBatch.js';
import { parseDecimal, ValueCache, type ValueEntry } from '../../runtime/gateway/valueCache.js';
import { deltaFrame, frame } from '../../runtime/gateway/ws.js';
import type { ValueRecord } from '../../runtime/domain/telemetry.js';

function cacheWith(initial: Record<string, ValueRecord>) {
  return new ValueCache(async () => new Map(Object.entries(initial)), ['pv1']);
}

/** The records an entry changed since it was last asked (what the feed sends). */
function changedRecords(e: ValueEntry): Record<string, ValueRecord> {
  return Object.fromEntries(e.takeChanged().map((i) => [e.names[i]!, e.record(i)]));
}

describe('ValueCache', () => {
  it('is not used before it is loaded, then follows value, quality-only and calculated updates', async () => {
    const cache = cacheWith({ P: { value: 1, ts: 10, quality: 'good' } });
    expect(cache.get('pv1')).toBeUndefined();
    await cache.load();
    expect(cache.get('pv1')!.get('P')).toEqual({ value: 1, ts: 10, quality: 'good' });
    const v0 = cache.version('pv1');
    const e = cache.change('pv1')!;
    expect(cache.version('pv1')).not.toBe(v0);
    e.tracking = true;
    e.applyModel({ ts: 20, v: { P: 2, Q: 3 }, q: { Q: 'stale' } });
    expect(cache.get('pv1')!.get('P')).toEqual({ value: 2, ts: 20, quality: 'good' });
    expect(cache.get('pv1')!.get('Q')).toEqual({ value: 3, ts: 20, quality: 'stale' });
    changedRecords(e);
    // A quality-only mark (the device stopped answering) keeps the last value, as c2m does in Redis.
    e.applyModel({ ts: 30, v: {}, q: { P: 'comm-failure' } });
    expect(changedRecords(e)).toEqual({ P: { value: 2, ts: 30, quality: 'comm-failure' } });
    expect(cache.get('pv1')!.get('P')).toEqual({ value: 2, ts: 30, quality: 'comm-failure' });
    expect(cache.change('other')).toBeUndefined();
    expect(cache.get('other')).toBeUndefined();
  });

  it('follows channel notifications: the time and the points text', async () => {
    const cache = cacheWith({ 'm:1': { value: 5, ts: 10, quality: 'good' } });
    await cache.load();
    const e = cache.change('pv1')!;
    e.tracking = true;
    expect(e.applyChannel('20\nm 1 6.000000 \nm 2  comm-failure\n')).toBe(20);
    expect(changedRecords(e)).toEqual({ 'm:1': { value: 6, ts: 20, quality: 'good' }, 'm:2': { value: null, ts: 20, quality: 'comm-failure' } });
    e.applyChannel('30\nm 1  stale\n');
    expect(changedRecords(e)).toEqual({ 'm:1': { value: 6, ts: 30, quality: 'stale' } });
    // Untracked (nobody listens): the values follow, no change is kept.
    e.tracking = false;
    e.applyChannel('40\nm 1 7.500000 \n');
    expect(e.takeChanged()).toEqual([]);
    expect(cache.get('pv1')!.get('m:1')).toEqual({ value: 7.5, ts: 40, quality: 'good' });
  });

  it('a channel linked to its model writes the model values it feeds, as c2m does', async () => {
    const channels = new ValueCache(async () => new Map(), ['ch']);
    const models = new ValueCache(async () => new Map([['P', { value: 1, ts: 10, quality: 'good' as const }]]), ['pv1']);
    await channels.load();
    await models.load();
    const ch = channels.entry('ch')!;
    const pv = models.entry('pv1')!;
    ch.link('m:1', 'pv1', pv, 'P');
    ch.link('m:2', 'pv1', pv, 'Q');
    expect(ch.feeds.map((f) => f.id)).toEqual(['pv1']);
    pv.tracking = true;
    ch.applyChannel('20\nm 1 2.500000 \nm 2 3.000000 stale\nm 3 4.000000 \n');
    expect(changedRecords(pv)).toEqual({ P: { value: 2.5, ts: 20, quality: 'good' }, Q: { value: 3, ts: 20, quality: 'stale' } });
    ch.applyChannel('30\nm 1  comm-failure\n');
    expect(models.get('pv1')!.get('P')).toEqual({ value: 2.5, ts: 30, quality: 'comm-failure' });
    // Names linked but never written are not values yet.
    const fresh = new ValueCache(async () => new Map(), ['x']);
    await fresh.load();
    fresh.entry('x')!.slot('never');
    expect(fresh.get('x')!.size).toBe(0);
  });

  it('property: a channel notification applied gives the points C2mBatch wrote, and its delta reads back as frame() of them', async () => {
    const point = fc.record({
      type: fc.constantFrom('m', 's', 'c', 'a' as const),
      id: fc.nat({ max: 100_000 }),
      value: fc.option(fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e20, max: 1e20 })),
      quality: fc.option(fc.constantFrom('good', 'stale', 'bad', 'comm-failure' as const)),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(point, { minLength: 1, maxLength: 30 }), fc.integer({ min: 1, max: 2 ** 45 }), async (points, ts) => {
        const cache = cacheWith({});
        await cache.load();
        const e = cache.change('pv1')!;
        e.tracking = true;
        const batch = new C2mBatch();
        const expected: Record<string, ValueRecord> = {};
        for (const p of points) {
          const quality = p.value === null && p.quality === null ? 'bad' : p.quality;
          batch.add(p.type, p.id, p.value, quality);
          const name = `${p.type}:${p.id}`;
          const value = p.value === null ? (expected[name]?.value ?? null) : Number(p.value.toFixed(6));
          expected[name] = { value, ts, quality: p.value === null ? quality : (quality ?? 'good') };
        }
        e.applyChannel(`${ts}\n${batch.bytes().toString('latin1')}`);
        const changed = e.takeChanged();
        const got = Object.fromEntries(changed.map((i) => [e.names[i]!, e.record(i)]));
        expect(got).toEqual(expected);
        expect(JSON.parse(deltaFrame('channel/pv1', e, changed))).toEqual(JSON.parse(frame('channel/pv1', got, false)));
      }),
      { numRuns: 200 },
    );
  });

  it('property: parseDecimal equals Number() of the text', () => {
    fc.assert(
      fc.property(fc.double({ noNaN: true, noDefaultInfinity: true }), fc.integer({ min: 0, max: 8 }), (x, d) => {
        const text = Math.abs(x) < 1e21 ? x.toFixed(d) : String(x);
        expect(Object.is(parseDecimal(`a${text}b`, 1, text.length + 1), Number(text))).toBe(true);
      }),
      { numRuns: 2000 },
    );
    expect(parseDecimal('-0.000000', 0, 9)).toBe(-0);
    expect(parseDecimal('12.5', 0, 4)).toBe(12.5);
  });
});
