/**
 * Test cases of rules on a simulated clock (runtime/domain/ruleSim.ts) and
 * `voltage rules test`: the demo's cases pass (exit 0); a fixture with a case
 * wrong on purpose fails with the difference printed (exit 1). Also the
 * sequence trigger: in order and within its window only.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../runtime/config/load.js';
import { SequenceTracker } from '../../runtime/domain/ruleEvaluation.js';
import { runRuleTest, simulateRules } from '../../runtime/domain/ruleSim.js';

const run = async (dir: string): Promise<{ code: number; out: string }> => {
  try {
    const { stdout } = await promisify(execFile)(process.execPath, ['runtime/bin/voltage.js', 'rules', 'test', '--config', dir], { timeout: 30_000 });
    return { code: 0, out: stdout };
  } catch (e) {
    const err = e as { code?: number; stdout?: string };
    return { code: err.code ?? -1, out: err.stdout ?? '' };
  }
};

describe('voltage rules test', () => {
  it('runs the demo config cases: each passed, exit 0', async () => {
    const { code, out } = await run('config');
    expect(out).toContain('passed  zero export caps the inverter');
    expect(out).toContain('passed  battery protection wins over peak shaving');
    expect(out).toContain('passed  export stops within a second of the cap; the limit is given back at the interval');
    expect(out).toMatch(/\n\d+ passed, 0 failed\n$/);
    expect(code).toBe(0);
  });

  it('a case that fails: printed with the difference, exit 1', async () => {
    const { code, out } = await run('test/fixtures/rules-failing');
    expect(out).toContain('passed  the breaker opens, then the power surges within 30 s');
    expect(out).toContain('FAILED  wrong on purpose');
    expect(out).toContain('expected, not taken: 40s * control bess1.limit = 10');
    expect(out).toContain('1 passed, 1 failed');
    expect(code).toBe(1);
  });
});

describe('rule simulation', () => {
  const site = loadConfig('test/fixtures/rules-failing');
  const at = (given: Array<[number, Record<string, number>]>) =>
    simulateRules(site.rules, {
      name: 'x',
      start: '2026-01-05T00:00:00Z',
      given: given.map(([t, values]) => ({ at: t, values })),
      expect: [],
    }).map((a) => a.at);

  it('a sequence fires when its conditions become true in order within the window, once', () => {
    expect(
      at([
        [0, { 'bess1.breaker': 1, 'bess1.P': 0 }],
        [1_000, { 'bess1.breaker': 0 }],
        [2_000, { 'bess1.P': 60 }],
        [3_000, { 'bess1.P': 70 }],
      ]),
    ).toEqual([2_000]);
  });

  it('out of order, or too late, it does not fire', () => {
    expect(
      at([
        [0, { 'bess1.breaker': 1, 'bess1.P': 60 }],
        [1_000, { 'bess1.breaker': 0 }],
      ]),
    ).toEqual([]);
    expect(
      at([
        [0, { 'bess1.breaker': 1, 'bess1.P': 0 }],
        [1_000, { 'bess1.breaker': 0 }],
        [31_001, { 'bess1.P': 60 }],
      ]),
    ).toEqual([]);
  });

  it("a command held back by the rate limit is sent at the interval's end; one not held back at once", () => {
    const zeroExport = loadConfig('config').rules.filter((r) => r.id === 'zero-export');
    // The cap at 15 s; the export stops at `release`: within the second since the cap, the limit is held back to 16 s.
    for (const [release, sentAt] of [
      [15_300, 16_000],
      [15_999, 16_000],
      [16_000, 16_000],
      [16_500, 16_500],
    ] as const) {
      const given: Array<{ at: number; values: Record<string, number> }> = [
        { at: 0, values: { 'grid.P': 1, 'pv1.P': 30 } },
        { at: 5_000, values: { 'grid.P': -5 } },
        { at: release, values: { 'grid.P': 0 } },
      ];
      const took = simulateRules(zeroExport, { name: 'x', start: '2026-01-05T00:00:00Z', given, expect: [] });
      expect(took.map((a) => [a.at, a.action.kind === 'control' ? a.action.value : null])).toEqual([
        [15_000, 25],
        [sentAt, 80],
      ]);
    }
  });

  it('a case compares actions at their times, values within 1e-6', () => {
    const r = runRuleTest(site.rules, site.ruleTests[0]!);
    expect(r).toEqual({ name: site.ruleTests[0]!.name, passed: true, missing: [], unexpected: [] });
    const wrong = runRuleTest(site.rules, { ...site.ruleTests[0]!, expect: [{ at: 20_000, control: { model: 'bess1', name: 'limit', value: 11 } }] });
    expect(wrong.passed).toBe(false);
    expect(wrong.missing).toEqual(['20s * control bess1.limit = 11']);
    expect(wrong.unexpected).toEqual(['20s trip-then-surge control bess1.limit = 10']);
  });
});

describe('sequence tracker', () => {
  it('fires only on a rise of the last step, after a rise of the first within the window; never on values that hold', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 3_000 }), fc.boolean(), fc.boolean()), { maxLength: 80 }),
        fc.integer({ min: 1, max: 5_000 }),
        (steps, within) => {
          const tr = new SequenceTracker(2, within);
          let now = 0;
          let prev: [boolean, boolean] = [false, false];
          const rises0: Array<[number, number]> = [];
          for (const [i, [dt, a, b]] of steps.entries()) {
            now += dt;
            const fired = tr.step([a, b], now);
            if (fired) {
              expect(b && !prev[1]).toBe(true);
              // The first step rose in an earlier evaluation, within the window.
              expect(rises0.some(([j, t]) => j < i && now - t <= within)).toBe(true);
            }
            if (a && !prev[0]) rises0.push([i, now]);
            prev = [a, b];
          }
        },
      ),
    );
  });
});
