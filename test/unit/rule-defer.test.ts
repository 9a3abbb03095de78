import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Arbiter, type Claim } from '../../actors/rules/arbiter.js';

/**
 * The arbiter's deferrals as the rule actors use them: each decision held back by the rate limit is
 * asked again with due() when it comes due (the actor's timer), on an injected clock.
 */
interface Decision {
  readonly at: number;
  readonly rule: 'a' | 'b' | 'c';
  readonly value: number;
}

const PRIORITY: Record<Decision['rule'], number> = { a: 1, b: 1, c: 5 };

/** Runs the decisions on one control (every rule claiming it while active: all of them here); returns the sends. */
function run(decisions: readonly Decision[], min: number, claims: (a: Arbiter, now: number) => void = () => {}) {
  const a = new Arbiter();
  const sends: Array<{ at: number; value: number; rule: string }> = [];
  const timers: Array<{ at: number; token: number; value: number; rule: string }> = [];
  const sorted = [...decisions].sort((x, y) => x.at - y.at);
  const fire = (until: number) => {
    // The timers due by `until`, in time order (bounded: each fires once).
    for (;;) {
      timers.sort((x, y) => x.at - y.at);
      const t = timers[0];
      if (!t || t.at > until) return;
      timers.shift();
      claims(a, t.at);
      const v = a.due('ctl', t.token, t.at);
      if (v?.send) sends.push({ at: t.at, value: t.value, rule: t.rule });
    }
  };
  for (const d of sorted) {
    fire(d.at - 1);
    claims(a, d.at);
    const claim: Claim = { rule: d.rule, priority: PRIORITY[d.rule] };
    const v = a.decide('ctl', claim, min, d.at);
    if (v.send) sends.push({ at: d.at, value: d.value, rule: d.rule });
    else if (v.why === 'deferred') timers.push({ at: v.at, token: v.token, value: d.value, rule: d.rule });
    fire(d.at);
  }
  fire(Number.MAX_SAFE_INTEGER);
  return sends;
}

const decisionsArb = fc.array(
  fc.record({ at: fc.integer({ min: 0, max: 5_000 }), rule: fc.constantFrom<Decision['rule']>('a', 'b'), value: fc.integer({ min: 0, max: 100 }) }),
  { minLength: 1, maxLength: 30 },
);

describe('deferred commands (arbiter)', () => {
  it('at most one send per control per minIntervalMs, whatever the decisions and their times', () => {
    fc.assert(
      fc.property(decisionsArb, fc.integer({ min: 1, max: 2_000 }), (ds, min) => {
        const sends = run(ds, min);
        for (let i = 1; i < sends.length; i++) expect(sends[i]!.at - sends[i - 1]!.at).toBeGreaterThanOrEqual(min);
      }),
    );
  });

  it('the value finally sent after a burst is the last decision’s', () => {
    fc.assert(
      fc.property(decisionsArb, fc.integer({ min: 1, max: 2_000 }), (ds, min) => {
        const sends = run(ds, min);
        const last = [...ds].sort((x, y) => x.at - y.at).at(-1)!;
        // Decisions at the same instant: the last in time order is the one sort kept last.
        expect(sends.at(-1)!.value).toBe(last.value);
        expect(sends.at(-1)!.at).toBeGreaterThanOrEqual(last.at);
        // ...and it goes out no later than the interval after the send before it.
        if (sends.length > 1) expect(sends.at(-1)!.at).toBeLessThanOrEqual(Math.max(last.at, sends.at(-2)!.at + min));
      }),
    );
  });

  it('a deferral is dropped when a higher-priority claim wins meanwhile', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 999 }), (held) => {
        const a = new Arbiter();
        const low: Claim = { rule: 'low', priority: 1 };
        expect(a.decide('ctl', low, 1_000, 0)).toEqual({ send: true });
        const v = a.decide('ctl', low, 1_000, held);
        if (v.send || v.why !== 'deferred') throw new Error('expected a deferral');
        expect(v.at).toBe(1_000);
        a.claim('ctl', { rule: 'high', priority: 9 });
        expect(a.due('ctl', v.token, v.at)).toEqual({ send: false, why: 'overridden', by: 'high' });
        // Dropped, not pending: asked again it is gone, and the control was not commanded.
        expect(a.due('ctl', v.token, v.at + 1)).toEqual({ send: false, why: 'superseded' });
        expect(a.lastSentAt('ctl')).toBe(0);
      }),
    );
  });

  it('a higher claim that goes away before the deferral is due lets it through; a newer decision supersedes it', () => {
    const a = new Arbiter();
    const low: Claim = { rule: 'low', priority: 1 };
    expect(a.decide('ctl', low, 1_000, 0)).toEqual({ send: true });
    const v = a.decide('ctl', low, 1_000, 300);
    if (v.send || v.why !== 'deferred') throw new Error('expected a deferral');
    a.claim('ctl', { rule: 'high', priority: 9 });
    a.release('ctl', 'high');
    expect(a.due('ctl', v.token, 999)).toBeUndefined();
    expect(a.dueAt('ctl', v.token)).toBe(1_000);
    expect(a.due('ctl', v.token, 1_000)).toEqual({ send: true });
    // A second burst: the first deferral superseded by the second (another rule's).
    const w1 = a.decide('ctl', low, 1_000, 1_100);
    const w2 = a.decide('ctl', { rule: 'other', priority: 1 }, 1_000, 1_200);
    if (w1.send || w1.why !== 'deferred' || w2.send || w2.why !== 'deferred') throw new Error('expected deferrals');
    expect(a.due('ctl', w1.token, 2_000)).toEqual({ send: false, why: 'superseded' });
    expect(a.due('ctl', w2.token, 2_000)).toEqual({ send: true });
  });

  it('with a higher rule claiming, only its decisions are sent or deferred', () => {
    fc.assert(
      fc.property(decisionsArb, (ds) => {
        const withC = ds.map((d, i) => (i % 3 === 0 ? { ...d, rule: 'c' as const } : d));
        const sends = run(withC, 500, (a) => a.claim('ctl', { rule: 'c', priority: 5 }));
        expect(sends.every((s) => s.rule === 'c')).toBe(true);
      }),
    );
  });
});
