/**
 * The flood KPI: the time in flood computed from the raise times equals, for any
 * raises, the time counted millisecond by millisecond from the definition
 * (more than `count` raises within the `windowMs` ending at that moment).
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { floodMs } from '../../runtime/gateway/routes/alarms.js';

function bruteForce(raises: readonly number[], count: number, windowMs: number, from: number, to: number): number {
  let n = 0;
  for (let t = from; t < to; t++) if (raises.filter((r) => r <= t && r > t - windowMs).length > count) n += 1;
  return n;
}

describe('time in flood', () => {
  it('a burst of count+1 raises floods until the oldest leaves the window', () => {
    expect(floodMs([100, 110, 120], 2, 50, 0, 1000)).toBe(30); // from 120 until 100 + 50
    expect(floodMs([100, 110, 120], 3, 50, 0, 1000)).toBe(0);
  });

  it('law: equals the definition counted millisecond by millisecond', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 300 }), { maxLength: 25 }),
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 60 }),
        fc.integer({ min: 0, max: 150 }),
        fc.integer({ min: 150, max: 400 }),
        (times, count, windowMs, from, to) => {
          const raises = [...times].sort((a, b) => a - b);
          expect(floodMs(raises, count, windowMs, from, to)).toBe(bruteForce(raises, count, windowMs, from, to));
        },
      ),
      { numRuns: 300 },
    );
  });
});
