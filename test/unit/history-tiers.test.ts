/**
 * Tiers (actors/history/tiers.ts, query.ts): which buckets are due, and which
 * tier a step is answered from. The numbers themselves are checked against a
 * real VictoriaMetrics in test/integration/history-tiers.test.ts.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { tierFor } from '../../actors/history/query.js';
import { dueBuckets, initialMarks } from '../../actors/history/tiers.js';

const H = 3_600_000;
const M = 60_000;

describe('history tiers', () => {
  it('a step is answered from the coarsest tier whose buckets tile it', () => {
    expect(tierFor(86_400_000)?.name).toBe('1h');
    expect(tierFor(2 * H)?.name).toBe('1h');
    expect(tierFor(H)?.name).toBe('1h');
    expect(tierFor(15 * M)?.name).toBe('1m');
    expect(tierFor(M)?.name).toBe('1m');
    expect(tierFor(90_000)).toBeUndefined();
    expect(tierFor(10_000)).toBeUndefined();
  });

  it('buckets are due once written through their end; an hour once its minutes are done; at most max a check', () => {
    const marks = initialMarks(10 * H + 30 * M + 5_000);
    expect(marks).toEqual({ '1m': 10 * H + 30 * M, '1h': 10 * H });
    expect(dueBuckets(marks, 10 * H + 31 * M - 1, 100)).toEqual([]);
    expect(dueBuckets(marks, 10 * H + 32 * M, 100).map((b) => [b.tier.name, b.end])).toEqual([
      ['1m', 10 * H + 31 * M],
      ['1m', 10 * H + 32 * M],
    ]);
    const through = 11 * H + 5 * M;
    const all = dueBuckets(marks, through, 1_000);
    expect(all.filter((b) => b.tier.name === '1m')).toHaveLength(35);
    expect(all.filter((b) => b.tier.name === '1h')).toEqual([]); // its minutes are written in this check: the next one
    expect(dueBuckets({ '1m': 11 * H + 5 * M, '1h': 10 * H }, through, 1_000).map((b) => [b.tier.name, b.end])).toEqual([['1h', 11 * H]]);
    expect(dueBuckets(marks, through, 10)).toHaveLength(10);
  });

  it('law: the buckets due are consecutive from the mark, none ends after what was written, an hour never before its minutes', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 1_000 * H }), fc.integer({ min: 0, max: 5 * H }), fc.integer({ min: 1, max: 500 }), (from, ahead, max) => {
        const marks = initialMarks(from);
        const through = from + ahead;
        const due = dueBuckets(marks, through, max);
        expect(due.length).toBeLessThanOrEqual(max);
        const minutes = due.filter((b) => b.tier.name === '1m').map((b) => b.end);
        for (const [i, end] of minutes.entries()) expect(end).toBe(marks['1m'] + (i + 1) * M);
        for (const end of minutes) expect(end).toBeLessThanOrEqual(through);
        const lastMinute = minutes.length > 0 ? minutes[minutes.length - 1]! : marks['1m'];
        for (const b of due.filter((x) => x.tier.name === '1h')) expect(b.end).toBeLessThanOrEqual(Math.min(lastMinute, marks['1m']));
      }),
    );
  });
});
