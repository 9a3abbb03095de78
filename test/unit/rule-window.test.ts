/**
 * Window functions over a point's recent values (runtime/domain/window.ts) and
 * their place in the calculation language of rules: laws over random series,
 * the ring's bound, and the validation errors.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { WindowRing, windowValue } from '../../runtime/domain/window.js';
import { compileExpr } from '../../runtime/expr.js';

const cumulative = (steps: readonly number[]): number[] => {
  const out: number[] = [];
  for (const dt of steps) out.push((out.at(-1) ?? 0) + dt);
  return out;
};

/** A series: ascending distinct times with values, and an evaluation time at or after the last. */
const series = fc
  .array(fc.tuple(fc.integer({ min: 1, max: 5_000 }), fc.double({ min: -1e6, max: 1e6, noNaN: true })), { minLength: 1, maxLength: 60 })
  .chain((steps) =>
    fc.record({
      times: fc.constant(cumulative(steps.map(([dt]) => dt))),
      values: fc.constant(steps.map(([, v]) => v)),
      after: fc.integer({ min: 0, max: 10_000 }),
      ms: fc.integer({ min: 1, max: 200_000 }),
    }),
  );

/** The index of the last time at or before `t` (0 when none is). */
const lastAtOrBefore = (times: readonly number[], t: number): number => {
  let i = times.length - 1;
  while (i > 0 && times[i]! > t) i--;
  return i;
};

describe('window functions', () => {
  it('min ≤ avg ≤ max, and min and max are the extremes of the values the window sees', () => {
    fc.assert(
      fc.property(series, ({ times, values, after, ms }) => {
        const now = times.at(-1)! + after;
        const lo = windowValue('min', times, values, ms, now);
        const hi = windowValue('max', times, values, ms, now);
        const avg = windowValue('avg', times, values, ms, now);
        const eps = 1e-6 * Math.max(1, Math.abs(lo), Math.abs(hi));
        expect(lo).toBeLessThanOrEqual(avg + eps);
        expect(avg).toBeLessThanOrEqual(hi + eps);
        // Naively: the values inside the window, plus the one held at its start.
        const from = now - ms;
        const startIdx = lastAtOrBefore(times, from);
        const seen = values.slice(startIdx);
        expect(lo).toBe(Math.min(...seen));
        expect(hi).toBe(Math.max(...seen));
      }),
    );
  });

  it('a constant series: avg = min = max = the value, delta = 0 and rate = 0 (or NaN with no span)', () => {
    fc.assert(
      fc.property(series, fc.double({ min: -1e6, max: 1e6, noNaN: true }), ({ times, after, ms }, c) => {
        const values = times.map(() => c);
        const now = times.at(-1)! + after;
        for (const fn of ['avg', 'min', 'max'] as const) expect(windowValue(fn, times, values, ms, now)).toBeCloseTo(c, 6);
        expect(windowValue('delta', times, values, ms, now)).toBe(0);
        const rate = windowValue('rate', times, values, ms, now);
        expect(rate === 0 || Number.isNaN(rate)).toBe(true);
      }),
    );
  });

  it('delta is the value now minus the value at the window start; rate is delta per second of the span', () => {
    fc.assert(
      fc.property(series, ({ times, values, after, ms }) => {
        const now = times.at(-1)! + after;
        const startIdx = lastAtOrBefore(times, now - ms);
        expect(windowValue('delta', times, values, ms, now)).toBe(values.at(-1)! - values[startIdx]!);
        const span = now - Math.max(now - ms, times[startIdx]!);
        const rate = windowValue('rate', times, values, ms, now);
        if (span > 0) expect(rate).toBeCloseTo(((values.at(-1)! - values[startIdx]!) * 1000) / span, 6);
        else expect(rate).toBeNaN();
      }),
    );
  });

  it('the ring gives what the whole series gives, for any window it covers, and never holds more than its capacity', () => {
    fc.assert(
      fc.property(series, fc.integer({ min: 2, max: 30 }), ({ times, values, after, ms }, capacity) => {
        const ring = new WindowRing(ms, 10_000);
        const small = new WindowRing(ms, capacity);
        times.forEach((t, i) => {
          ring.push(t, values[i]!);
          small.push(t, values[i]!);
          expect(small.size).toBeLessThanOrEqual(capacity);
        });
        const now = times.at(-1)! + after;
        for (const fn of ['avg', 'min', 'max', 'delta', 'rate'] as const) {
          const want = windowValue(fn, times, values, ms, now);
          const got = ring.compute(fn, ms, now);
          if (Number.isNaN(want)) expect(got).toBeNaN();
          else expect(got).toBeCloseTo(want, 6);
        }
      }),
    );
  });

  it('an empty ring reads NaN: a rule never acts on a window it has no values for', () => {
    expect(new WindowRing(60_000).compute('avg', 60_000, 1_000)).toBeNaN();
    const e = compileExpr('avg(grid.P, 60s) > 1', { windows: true });
    expect(
      e.evaluate(
        () => 5,
        () => undefined,
      ),
    ).toBe(0);
    expect(Number.isNaN(compileExpr('avg(grid.P, 60s)', { windows: true }).evaluate(() => 5))).toBe(true);
  });

  it('compiles avg(x, 60s) and friends into window references', () => {
    const e = compileExpr('avg(grid.P, 1m) < -2 && rate(bess1.soc, 500ms) < 0 && max(a, b) > 0', { windows: true });
    expect(e.windows).toEqual([
      { fn: 'avg', ref: 'grid.P', ms: 60_000 },
      { fn: 'rate', ref: 'bess1.soc', ms: 500 },
    ]);
    expect(e.refs).toEqual(['grid.P', 'bess1.soc', 'a', 'b']);
  });

  it.each([
    ['avg(grid.P + 1, 60s)', 'first argument must be a point'],
    ['avg(grid.P, 0s)', 'longer than 0'],
    ['delta(grid.P, 25h)', 'at most 24h'],
    ['rate(grid.P, 5)', 'must be a duration'],
    ['rate(grid.P)', 'takes a point and a window'],
    ['grid.P > 60s', 'only allowed as a window'],
  ])('rejects %s', (text, message) => {
    expect(() => compileExpr(text, { windows: true })).toThrow(message);
  });

  it('a window function outside a rule (a model calculation) is an error', () => {
    expect(() => compileExpr('avg(P, 60s)')).toThrow('allowed in rules only');
    expect(compileExpr('min(P, 3)').evaluate(() => 5)).toBe(3);
  });
});
