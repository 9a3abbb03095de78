/**
 * The rule machine: idle → holding → active → cooldown → idle, its absolute
 * deadlines, blocking on a bad input, and two laws checked with fast-check:
 * a rule with `for: T` fires only if the condition held for T without
 * interruption, and never twice within its cooldown; arbitration always picks
 * the highest-priority active rule.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Arbiter, pickWinner } from '../../actors/rules/arbiter.js';
import { TIMELESS_CONDITION } from '../../actors/rules/RuleActor.js';
import { directStepOf, quietStepOf } from '../../machines/quietStep.js';
import {
  initialRule,
  nextDeadline,
  ruleMachine,
  stepRule,
  transitionRule,
  type RuleContext,
  type RuleEvent,
  type RuleInput,
  type RuleSnapshotData,
} from '../../machines/ruleMachine.js';

interface Fire {
  readonly at: number;
  readonly index: number;
  readonly effect: 'then' | 'else';
}

function run(events: readonly RuleEvent[], input: RuleInput): { rule: RuleSnapshotData; fires: Fire[] } {
  let rule = initialRule(input);
  const fires: Fire[] = [];
  events.forEach((e, index) => {
    const next = stepRule(rule, e);
    if (!next) return;
    rule = next;
    if (next.context.effect) fires.push({ at: e.now, index, effect: next.context.effect });
  });
  return { rule, fires };
}

const cond = (value: boolean, now: number): RuleEvent => ({ type: 'CONDITION', value, now });
const tick = (now: number): RuleEvent => ({ type: 'TICK', now });

describe('rule machine: the cycle', () => {
  it('holds for `for`, fires once, releases on false, cools down, returns to idle', () => {
    const input = { forMs: 10_000, cooldownMs: 30_000 };
    let r = initialRule(input);
    r = stepRule(r, cond(true, 1_000))!;
    expect(r.state).toBe('holding');
    expect(r.context.holdUntil).toBe(11_000);
    expect(nextDeadline(r)).toBe(11_000);
    expect(stepRule(r, tick(10_999))).toBeUndefined();
    r = stepRule(r, tick(11_000))!;
    expect(r.state).toBe('active');
    expect(r.context.effect).toBe('then');
    expect(r.context.cooldownUntil).toBe(41_000);
    expect(stepRule(r, cond(true, 12_000))?.context.effect ?? null).toBeNull();
    r = stepRule(r, cond(false, 20_000))!;
    expect(r.state).toBe('cooldown');
    expect(r.context.effect).toBe('else');
    expect(stepRule(r, cond(true, 30_000))!.state).toBe('cooldown');
    r = stepRule(r, tick(41_000))!;
    expect(r.state).toBe('idle');
  });

  it('a release after the cooldown has passed returns to idle in one step (no cooldown, or a condition that held longer)', () => {
    let r = stepRule(initialRule({ forMs: 0, cooldownMs: 0 }), cond(true, 5))!;
    r = stepRule(r, cond(false, 5))!;
    expect(r.state).toBe('idle');
    expect(r.context.effect).toBe('else');
    expect(nextDeadline(r)).toBeNull();
    r = stepRule(initialRule({ forMs: 0, cooldownMs: 30_000 }), cond(true, 0))!;
    expect(stepRule(r, cond(false, 29_999))!.state).toBe('cooldown');
    const released = stepRule(r, cond(false, 30_000))!;
    expect(released.state).toBe('idle');
    expect(released.context.effect).toBe('else');
    expect(stepRule(released, cond(true, 30_001))!.context.effect).toBe('then');
  });

  it('without `for` fires on the first true condition', () => {
    const r = stepRule(initialRule({ forMs: 0, cooldownMs: 0 }), cond(true, 5))!;
    expect(r.state).toBe('active');
    expect(r.context.effect).toBe('then');
  });

  it('a false condition interrupts a running `for`', () => {
    const { rule, fires } = run([cond(true, 0), cond(false, 5_000), cond(true, 6_000), tick(10_000)], { forMs: 10_000, cooldownMs: 0 });
    expect(rule.state).toBe('holding');
    expect(rule.context.holdUntil).toBe(16_000);
    expect(fires).toEqual([]);
  });

  it('a bad input blocks: the `for` is interrupted and the reason kept until the next condition', () => {
    const { rule, fires } = run([cond(true, 0), { type: 'BLOCK', reason: 'grid.P is bad', now: 5_000 }, tick(10_000)], { forMs: 10_000, cooldownMs: 0 });
    expect(rule.state).toBe('idle');
    expect(rule.context.blocked).toBe('grid.P is bad');
    expect(fires).toEqual([]);
    expect(stepRule(rule, cond(false, 11_000))!.context.blocked).toBeNull();
  });

  it('a blocked active rule stays active and runs no else', () => {
    const { rule, fires } = run([cond(true, 0), { type: 'BLOCK', reason: 'bad', now: 1 }], { forMs: 0, cooldownMs: 0 });
    expect(rule.state).toBe('active');
    expect(fires).toEqual([{ at: 0, index: 0, effect: 'then' }]);
  });

  it('disabled: nothing fires until enabled, and enabling starts from idle', () => {
    const { rule, fires } = run([cond(true, 0), { type: 'DISABLE', now: 1 }, cond(true, 2), tick(100_000)], { forMs: 10, cooldownMs: 0 });
    expect(rule.state).toBe('disabled');
    expect(fires).toEqual([]);
    expect(stepRule(rule, { type: 'ENABLE', now: 200_000 })!.state).toBe('idle');
  });

  it('a condition that held through the cooldown starts its `for` when the cooldown ends', () => {
    const { rule } = run([cond(true, 0), tick(50), cond(false, 60), cond(true, 70), tick(150)], { forMs: 50, cooldownMs: 100 });
    expect(rule.state).toBe('holding');
    expect(rule.context.holdUntil).toBe(200);
  });

  it('resumes from a stored snapshot: a running `for` completes at its stored deadline', () => {
    const stored = JSON.parse(JSON.stringify(run([cond(true, 1_000)], { forMs: 10_000, cooldownMs: 0 }).rule)) as RuleSnapshotData;
    expect(stepRule(stored, tick(11_000))!.state).toBe('active');
  });
});

/** Events at increasing times: conditions, ticks and blocks. */
const eventsArb = fc.array(fc.tuple(fc.integer({ min: 0, max: 3_000 }), fc.integer({ min: 0, max: 9 })), { maxLength: 60 }).map((steps) => {
  let now = 0;
  return steps.map(([dt, kind]): RuleEvent => {
    now += dt;
    if (kind < 4) return cond(true, now);
    if (kind < 7) return tick(now);
    if (kind < 9) return cond(false, now);
    return { type: 'BLOCK', reason: 'bad', now };
  });
});
const inputArb = fc.record({ forMs: fc.integer({ min: 0, max: 5_000 }), cooldownMs: fc.integer({ min: 0, max: 10_000 }) });

describe('rule machine: laws', () => {
  it('fires only if the condition held for `for` without interruption', () => {
    fc.assert(
      fc.property(eventsArb, inputArb, (events, input) => {
        const { fires } = run(events, input);
        for (const f of fires.filter((x) => x.effect === 'then')) {
          const before = events.slice(0, f.index + 1);
          let lastBreak = -1;
          before.forEach((e, i) => {
            if (e.type === 'BLOCK' || (e.type === 'CONDITION' && !e.value)) lastBreak = i;
          });
          const trueSince = before.slice(lastBreak + 1).find((e) => e.type === 'CONDITION' && e.value);
          expect(trueSince).toBeDefined();
          expect(f.at - trueSince!.now).toBeGreaterThanOrEqual(input.forMs);
        }
      }),
      { numRuns: 400 },
    );
  });

  it('never fires twice within the cooldown', () => {
    fc.assert(
      fc.property(eventsArb, inputArb, (events, input) => {
        const thens = run(events, input)
          .fires.filter((x) => x.effect === 'then')
          .map((x) => x.at);
        for (let i = 1; i < thens.length; i++) expect(thens[i]! - thens[i - 1]!).toBeGreaterThanOrEqual(input.cooldownMs);
      }),
      { numRuns: 400 },
    );
  });

  it('each else follows a then, and a then is not repeated before its else', () => {
    fc.assert(
      fc.property(eventsArb, inputArb, (events, input) => {
        const effects = run(events, input).fires.map((f) => f.effect);
        effects.forEach((e, i) => {
          expect(e).toBe(i % 2 === 0 ? 'then' : 'else');
        });
      }),
      { numRuns: 200 },
    );
  });
});

/** Every kind of event, conditions often repeated (the case the quiet path answers), at increasing times. */
const anyEventsArb = fc.array(fc.tuple(fc.integer({ min: 0, max: 3_000 }), fc.integer({ min: 0, max: 13 })), { maxLength: 80 }).map((steps) => {
  let now = 0;
  return steps.map(([dt, kind]): RuleEvent => {
    now += dt;
    if (kind < 4) return cond(true, now);
    if (kind < 8) return cond(false, now);
    if (kind < 10) return tick(now);
    if (kind < 11) return { type: 'BLOCK', reason: 'bad', now };
    if (kind < 12) return { type: 'DISABLE', now };
    return { type: 'ENABLE', now };
  });
});

describe('rule machine: the quiet path and the inert scope agree with XState', () => {
  it('stepRule equals transition() on every step of random sequences, and the quiet path is taken', () => {
    const quiet = quietStepOf<RuleContext, RuleEvent>(ruleMachine);
    const direct = directStepOf<RuleContext, RuleEvent>(ruleMachine);
    let quietSteps = 0;
    let steps = 0;
    fc.assert(
      fc.property(anyEventsArb, inputArb, (events, input) => {
        let rule = initialRule(input);
        for (const e of events) {
          const reference = transitionRule(rule, e);
          expect(stepRule(rule, e)).toEqual(reference);
          // The direct step answers every step of this machine: the law checks it, not XState's fallback.
          expect(direct(rule.state, { ...rule.context, effect: null }, e)).toBeDefined();
          steps++;
          if (quiet(rule.state, { ...rule.context, effect: null }, e)) {
            quietSteps++;
            expect(reference).toBeUndefined();
          }
          // As the actor holds it: what Redis returned (JSON), effect and all.
          if (reference) rule = JSON.parse(JSON.stringify(reference)) as RuleSnapshotData;
        }
      }),
      { numRuns: 500 },
    );
    // The law is only worth something if the fast path ran often.
    expect(quietSteps).toBeGreaterThan(steps / 5);
  });

  it('in a state without deadlines, whether a condition is quiet does not depend on its time (the actor remembers it)', () => {
    expect([...TIMELESS_CONDITION].sort()).toEqual(['active', 'disabled', 'idle']);
    let checked = 0;
    fc.assert(
      fc.property(anyEventsArb, inputArb, fc.array(fc.integer({ min: 0, max: 20_000 }), { minLength: 3, maxLength: 3 }), (events, input, later) => {
        let rule = initialRule(input);
        for (const e of events) {
          if (TIMELESS_CONDITION.has(rule.state)) {
            for (const value of [true, false]) {
              const quietNow = stepRule(rule, cond(value, e.now)) === undefined;
              for (const dt of later) expect(stepRule(rule, cond(value, e.now + dt)) === undefined).toBe(quietNow);
              checked++;
            }
          }
          const next = stepRule(rule, e);
          if (next) rule = JSON.parse(JSON.stringify(next)) as RuleSnapshotData;
        }
      }),
      { numRuns: 300 },
    );
    expect(checked).toBeGreaterThan(1_000);
  });

  it('answers "not known" (XState decides) for a transition that moves', () => {
    const quiet = quietStepOf<RuleContext, RuleEvent>(ruleMachine);
    const idle = initialRule({ forMs: 0, cooldownMs: 0 });
    expect(quiet(idle.state, idle.context, cond(true, 1))).toBeUndefined();
    expect(quiet(idle.state, { ...idle.context, condition: false }, cond(false, 1))).toBe(true);
    expect(quiet('no-such-state', idle.context, cond(false, 1))).toBeUndefined();
  });
});

describe('arbitration', () => {
  const claimsArb = fc.uniqueArray(fc.record({ rule: fc.stringMatching(/^[a-z]{1,4}$/), priority: fc.integer({ min: -5, max: 5 }) }), {
    selector: (c) => c.rule,
    minLength: 1,
    maxLength: 8,
  });

  it('always picks the highest-priority claim, whatever the order the claims come in', () => {
    fc.assert(
      fc.property(claimsArb, (claims) => {
        const w = pickWinner(claims)!;
        expect(claims.every((c) => c.priority <= w.priority)).toBe(true);
        expect(pickWinner([...claims].reverse())).toEqual(w);
      }),
    );
  });

  it('an active higher-priority rule overrides; a control is commanded at most once per minIntervalMs', () => {
    const a = new Arbiter();
    a.claim('gw.limit', { rule: 'high', priority: 5 });
    expect(a.decide('gw.limit', { rule: 'low', priority: 1 }, 0, 0)).toEqual({ send: false, why: 'overridden', by: 'high' });
    expect(a.decide('gw.limit', { rule: 'high', priority: 5 }, 1_000, 0)).toEqual({ send: true });
    expect(a.decide('gw.limit', { rule: 'high', priority: 5 }, 1_000, 999)).toMatchObject({ send: false, why: 'deferred', at: 1_000 });
    expect(a.decide('gw.limit', { rule: 'high', priority: 5 }, 1_000, 1_000)).toEqual({ send: true });
    a.release('gw.limit', 'high');
    expect(a.decide('gw.limit', { rule: 'low', priority: 1 }, 0, 2_000)).toEqual({ send: true });
  });

  it('a send withdrawn (its commit was refused) gives the rate limit back as it was', () => {
    const a = new Arbiter();
    const claim = { rule: 'r', priority: 1 };
    expect(a.lastSentAt('gw.limit')).toBeUndefined();
    const never = a.mark('gw.limit');
    expect(a.decide('gw.limit', claim, 1_000, 0)).toEqual({ send: true });
    a.withdraw('gw.limit', never);
    expect(a.decide('gw.limit', claim, 1_000, 10)).toEqual({ send: true });
    const before = a.mark('gw.limit');
    expect(a.decide('gw.limit', claim, 1_000, 1_500)).toEqual({ send: true });
    a.withdraw('gw.limit', before);
    // Limited from the send that happened (at 10), not from the withdrawn one (at 1,500).
    expect(a.decide('gw.limit', claim, 1_000, 1_100)).toEqual({ send: true });
    const deferred = a.decide('gw.limit', claim, 1_000, 1_200);
    expect(deferred).toMatchObject({ send: false, why: 'deferred', at: 2_100 });
  });

  it('a deferral withdrawn (its commit was refused) gives back the one it superseded', () => {
    const a = new Arbiter();
    const claim = { rule: 'r', priority: 1 };
    expect(a.decide('gw.limit', claim, 1_000, 0)).toEqual({ send: true });
    const first = a.decide('gw.limit', claim, 1_000, 100);
    if (first.send || first.why !== 'deferred') throw new Error('expected a deferral');
    const before = a.mark('gw.limit');
    expect(a.decide('gw.limit', claim, 1_000, 200)).toMatchObject({ why: 'deferred' });
    a.withdraw('gw.limit', before);
    expect(a.due('gw.limit', first.token, 1_000)).toEqual({ send: true });
  });
});
