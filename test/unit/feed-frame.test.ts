/** The feed's message: a number per value, qualities and timestamps only where they differ, and nothing lost on the way. */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { frame, topicMatcher } from '../../runtime/gateway/ws.js';

type Rec = { value: number | null; ts: number | null; quality: string | null };

/** What a client reads back from a message: every value with its quality and timestamp. */
function read(text: string): { ts: number; values: Record<string, Rec> } {
  const m = JSON.parse(text) as {
    ts: number;
    values: Record<string, number | null>;
    quality?: Record<string, string | null>;
    times?: Record<string, number | null>;
  };
  const values: Record<string, Rec> = {};
  for (const [k, v] of Object.entries(m.values)) {
    values[k] = {
      value: v,
      ts: m.times && Object.hasOwn(m.times, k) ? m.times[k]! : m.ts,
      quality: m.quality && Object.hasOwn(m.quality, k) ? m.quality[k]! : 'good',
    };
  }
  return { ts: m.ts, values };
}

describe('feed frame', () => {
  it('writes the common case compactly: one timestamp, no quality', () => {
    const text = frame('model/pv1', { P: { value: 1.5, ts: 10, quality: 'good' }, Q: { value: -2, ts: 10, quality: 'good' } }, false);
    expect(JSON.parse(text)).toEqual({ topic: 'model/pv1', ts: 10, values: { P: 1.5, Q: -2 } });
  });

  it('property: a client reads back every value, quality and timestamp', () => {
    const rec = fc.record({
      value: fc.option(fc.double({ noNaN: true, noDefaultInfinity: true })),
      ts: fc.option(fc.integer({ min: 1, max: 2 ** 45 })),
      quality: fc.option(fc.constantFrom('good', 'stale', 'bad', 'comm-failure')),
    });
    fc.assert(
      fc.property(
        fc.dictionary(
          fc.string({ minLength: 1, maxLength: 8 }).filter((k) => k !== '__proto__'),
          rec,
          { minKeys: 1 },
        ),
        fc.boolean(),
        (values, snapshot) => {
          const back = read(frame('model/x', values, snapshot));
          const newest = Math.max(0, ...Object.values(values).map((v) => v.ts ?? 0));
          if (newest > 0) expect(back.ts).toBe(newest);
          expect(back.values).toEqual(Object.fromEntries(Object.entries(values).map(([k, v]) => [k, { ...v, value: Object.is(v.value, -0) ? 0 : v.value }])));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('matches topics by pattern', () => {
    expect(topicMatcher('model/*')('model/pv1')).toBe(true);
    expect(topicMatcher('model/pv1')('model/pv10')).toBe(false);
    expect(topicMatcher('*')('channel/1001')).toBe(true);
  });
});
