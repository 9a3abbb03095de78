/**
 * What history keeps (actors/history/keep.ts): off, on-change, interval, and
 * the heartbeat, as the laws in the module's header state them.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { HistoryKeep } from '../../runtime/config/history.js';
import { KeepFilter } from '../../actors/history/keep.js';
import type { HistorySample } from '../../actors/history/outbox.js';

const KEY = 'channel/1/m/1';
const series = { kind: 'point', channel: '1', type: 'm', point: 1 } as const;
const at = (ts: number, value: number | null = ts, quality: HistorySample['quality'] = 'good'): HistorySample => ({ series, ts, value, quality });

/** Feeds the samples (in order) and then closes up to `clock`; what was written, as [ts, value]. */
function run(
  keep: HistoryKeep | undefined,
  samples: readonly HistorySample[],
  clock: number,
  filter = new KeepFilter(keep ? new Map([[KEY, keep]]) : new Map()),
) {
  const out: HistorySample[] = [];
  const derived: HistorySample[] = [];
  for (const s of samples) filter.take(KEY, s, out, derived);
  filter.due(clock, out);
  return { written: out.map((s) => [s.ts, s.value]), derived: derived.map((s) => [s.ts, s.value]), filter };
}

describe('history: what is kept of a series', () => {
  it('no policy and plain on-change pass every sample; off keeps nothing', () => {
    const samples = [at(1_000), at(2_000), at(2_500)];
    expect(run(undefined, samples, 10_000).written).toEqual([
      [1_000, 1_000],
      [2_000, 2_000],
      [2_500, 2_500],
    ]);
    expect(new KeepFilter(new Map([[KEY, { mode: 'on-change' }]])).trivial).toBe(true);
    expect(run({ mode: 'off' }, samples, 10_000).written).toEqual([]);
  });

  it('interval: the last value of each interval, stamped at its end, written once the clock passed it', () => {
    const keep: HistoryKeep = { mode: 'interval', intervalMs: 1_000 };
    // (0, 1000]: 500, 1000 → 1000; (1000, 2000]: 1500 → 1500; (2000, 3000]: nothing; (3000, 4000]: 3200 (still open at clock 3999).
    const r = run(keep, [at(500), at(1_000), at(1_500), at(3_200)], 3_999);
    expect(r.written).toEqual([
      [1_000, 1_000],
      [2_000, 1_500],
    ]);
    expect(r.derived).toEqual(r.written); // all made by the filter: the writer keeps them to write again
    const out: HistorySample[] = [];
    r.filter.due(4_000, out);
    expect(out.map((s) => [s.ts, s.value])).toEqual([[4_000, 3_200]]);
    // A sample older than what was written (a window written again) is not written twice.
    const again: HistorySample[] = [];
    r.filter.take(KEY, at(1_200), again, []);
    expect(again).toEqual([]);
  });

  it('the window written again (again): on-change passes, interval keeps nothing, and the open interval keeps its newest value', () => {
    const keep: HistoryKeep = { mode: 'interval', intervalMs: 1_000 };
    const f = new KeepFilter(new Map([[KEY, keep]]));
    // (1000, 2000] is open with 1,900 (a batch after the window) when the window's 1,500 is encoded again.
    run(keep, [at(500), at(1_500), at(1_900)], 1_000, f);
    const out: HistorySample[] = [];
    f.again(KEY, at(1_500), out);
    expect(out).toEqual([]);
    f.due(2_000, out);
    expect(out.map((s) => [s.ts, s.value])).toEqual([[2_000, 1_900]]);
    const passed: HistorySample[] = [];
    new KeepFilter(new Map([[KEY, { mode: 'on-change', maxGapMs: 5_000 }]])).again(KEY, at(1_500), passed);
    new KeepFilter(new Map()).again(KEY, at(1_600), passed);
    expect(passed.map((s) => s.ts)).toEqual([1_500, 1_600]);
  });

  it('heartbeat: an unchanged value is written again every maxGapMs, up to the clock and between samples', () => {
    const r = run({ mode: 'on-change', maxGapMs: 1_000 }, [at(0, 7), at(3_500, 8)], 5_600);
    expect(r.written).toEqual([
      [0, 7],
      [1_000, 7],
      [2_000, 7],
      [3_000, 7],
      [3_500, 8],
      [4_500, 8],
      [5_500, 8],
    ]);
    // interval with a heartbeat: an empty interval gets the last value, on interval ends only.
    const i = run({ mode: 'interval', intervalMs: 1_000, maxGapMs: 2_000 }, [at(500, 1)], 6_000);
    expect(i.written).toEqual([
      [1_000, 1],
      [3_000, 1],
      [5_000, 1],
    ]);
  });

  it('a quality mark is kept as one: its heartbeat repeats the quality', () => {
    const r = run({ mode: 'on-change', maxGapMs: 1_000 }, [at(0, null, 'comm-failure')], 1_000);
    expect(r.written).toEqual([
      [0, null],
      [1_000, null],
    ]);
  });

  it('the state survives a restart (takeDirty → restore): the open interval is written once', () => {
    const keep: HistoryKeep = { mode: 'interval', intervalMs: 1_000 };
    const policies = new Map([[KEY, keep]]);
    const a = run(keep, [at(100), at(1_100), at(1_200)], 1_500, new KeepFilter(policies));
    expect(a.written).toEqual([[1_000, 100]]);
    const b = new KeepFilter(policies);
    b.restore(Object.fromEntries(a.filter.takeDirty()));
    expect(run(keep, [at(1_300)], 2_000, b).written).toEqual([[2_000, 1_300]]);
  });

  it('restore drops what the memory held beyond the acknowledged state: a new writer reads what the last one had not acknowledged again', () => {
    const keep: HistoryKeep = { mode: 'interval', intervalMs: 1_000 };
    const f = new KeepFilter(new Map([[KEY, keep]]));
    const settled = {}; // nothing of this series acknowledged yet: Redis holds no state for it
    // The batches fail: (0, 1000] and (1000, 2000] were written into them, then they were abandoned.
    expect(run(keep, [at(900), at(1_900)], 2_000, f).written).toEqual([
      [1_000, 900],
      [2_000, 1_900],
    ]);
    f.restore(settled);
    // Their entries are read again: both intervals are written again, not skipped as written already.
    expect(run(keep, [at(900), at(1_900)], 2_000, f).written).toEqual([
      [1_000, 900],
      [2_000, 1_900],
    ]);
  });

  it('law: interval writes, for every interval with a sample, exactly the last of them; nothing else', () => {
    fc.assert(
      fc.property(fc.integer({ min: 100, max: 5_000 }), fc.array(fc.integer({ min: 1, max: 3_000 }), { maxLength: 60 }), (intervalMs, steps) => {
        let t = 0;
        const samples = steps.map((d) => at((t += d)));
        const { written } = run({ mode: 'interval', intervalMs }, samples, t + intervalMs);
        const expected = new Map<number, number>();
        for (const s of samples) expected.set(Math.ceil(s.ts / intervalMs) * intervalMs, s.ts);
        expect(written).toEqual([...expected]);
      }),
    );
  });

  it('law: with a heartbeat, no gap between written samples is longer than maxGapMs, and every sample is kept', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1_000, max: 5_000 }), fc.array(fc.integer({ min: 1, max: 20_000 }), { minLength: 1, maxLength: 30 }), (gap, steps) => {
        let t = 0;
        const samples = steps.map((d) => at((t += d)));
        const { written } = run({ mode: 'on-change', maxGapMs: gap }, samples, t + 3 * gap);
        for (let i = 1; i < written.length; i++) expect(written[i]![0]! - written[i - 1]![0]!).toBeLessThanOrEqual(gap);
        expect(t + 3 * gap - written[written.length - 1]![0]!).toBeLessThan(gap);
        const ts = new Set(written.map((w) => w[0]));
        for (const s of samples) expect(ts.has(s.ts)).toBe(true);
      }),
    );
  });
});
