/**
 * The rules of a site on a simulated clock, for `voltage rules test`: no
 * Redis, no device, no timer. Each rule runs the same pure parts as its actor
 * (evaluateRule, stepRule, the window rings, the sequence tracker, the
 * arbiter, croner for cron) in the same order: an evaluation, a TICK for a
 * deadline due at that instant, a pulse (true, then false) for an event. A
 * control command held back by the rate limit is deferred as the actor defers
 * it: sent at its due time if the arbiter still lets it (at an instant, the
 * deferred commands due go first, before the values given for it).
 * Time moves from one instant to the next that something happens at: a given
 * value, an `every` period, a cron time, a rule's deadline. Values that a `set`
 * action writes are seen by the other rules at the same instant.
 *
 * What it leaves out: model calculations (give calculated values yourself),
 * the limits of m2c, the device's answer (a control action counts when the
 * arbiter lets it be sent), a rule alarm's operator life cycle.
 */
import { Cron } from 'croner';
import { initialRule, nextDeadline, stepRule, type RuleEvent, type RuleSnapshotData } from '../../machines/ruleMachine.js';
import { Arbiter } from '../../actors/rules/arbiter.js';
import { alarmGlob, type RuleDef } from '../config/rules.js';
import type { RuleTestConfig } from '../config/ruleTests.js';
import { evaluateRule, eventOf, planActions, RuleInputs, SequenceTracker, sequenceValues, type Evaluation, type PlannedAction } from './ruleEvaluation.js';

/** One action the simulation took: ms from the start of the case. */
export interface SimAction {
  readonly at: number;
  readonly rule: string;
  readonly action: PlannedAction;
}

const MAX_INSTANTS = 200_000;
const MAX_ROUNDS = 10;

interface SimRule {
  readonly def: RuleDef;
  state: RuleSnapshotData;
  readonly inputs: RuleInputs;
  readonly sequence: SequenceTracker | undefined;
  readonly cron: Cron | undefined;
  nextEvery: number | null;
  nextCron: number | null;
  readonly triggers: ReadonlySet<string>;
}

/** Runs one case; returns every action taken, in order. */
export function simulateRules(rules: readonly RuleDef[], tc: RuleTestConfig): SimAction[] {
  const start = Date.parse(tc.start);
  const chosen = tc.rules ? rules.filter((r) => tc.rules!.includes(r.id)) : rules;
  const lastTime = Math.max(...tc.given.map((g) => g.at), ...tc.expect.map((e) => e.at));
  const until = start + (tc.until ?? lastTime + 60_000);
  const arbiter = new Arbiter();
  const actions: SimAction[] = [];
  const sims: SimRule[] = chosen.map((def) => {
    const cron =
      def.event?.kind === 'cron' ? new Cron(def.event.cron, { paused: true, ...(def.event.timezone ? { timezone: def.event.timezone } : {}) }) : undefined;
    const state = initialRule({ forMs: def.forMs, cooldownMs: def.cooldownMs });
    return {
      def,
      state: def.enabled ? state : (stepRule(state, { type: 'DISABLE', now: start }) ?? state),
      inputs: new RuleInputs(def),
      sequence: def.event?.kind === 'sequence' ? new SequenceTracker(def.event.steps.length, def.event.withinMs) : undefined,
      cron,
      nextEvery: def.everyMs !== null ? start + def.everyMs : null,
      nextCron: cron ? (cron.nextRun(new Date(start))?.getTime() ?? null) : null,
      triggers: new Set(def.event?.kind === 'sequence' ? def.inputs : def.onChange),
    };
  });
  const given = [...tc.given].sort((a, b) => a.at - b.at);
  /** Deferred commands not yet due, in the order they were deferred (the actors' timers). */
  let deferred: Array<{ at: number; token: number; control: string; rule: string; action: PlannedAction }> = [];
  let gi = 0;

  const claim = (r: SimRule) => {
    for (const a of [...r.def.then, ...r.def.else]) {
      if (a.kind !== 'control') continue;
      if (r.state.state === 'active') arbiter.claim(`${a.model}.${a.name}`, { rule: r.def.id, priority: r.def.priority });
      else arbiter.release(`${a.model}.${a.name}`, r.def.id);
    }
  };
  const commit = (r: SimRule, ev: RuleEvent): RuleSnapshotData | undefined => {
    const to = stepRule(r.state, ev);
    if (to) r.state = to;
    return to;
  };
  /** The actions of a branch; `set` values go back into every rule's inputs (returned as changes). */
  const act = (r: SimRule, branch: 'then' | 'else', e: Evaluation, now: number, sets: Map<string, number>) => {
    for (const p of planActions(branch === 'then' ? r.def.then : r.def.else, e, r.inputs.windowScope(now))) {
      if ((p.kind === 'control' || p.kind === 'set') && p.value === null) continue;
      if (p.kind === 'control') {
        const a = (branch === 'then' ? r.def.then : r.def.else).find((x) => x.kind === 'control' && x.model === p.model && x.name === p.name);
        const min = a?.kind === 'control' ? a.minIntervalMs : 0;
        const control = `${p.model}.${p.name}`;
        const v = arbiter.decide(control, { rule: r.def.id, priority: r.def.priority }, min, now);
        if (!v.send) {
          if (v.why === 'deferred') deferred.push({ at: v.at, token: v.token, control, rule: r.def.id, action: p });
          continue;
        }
      }
      if (p.kind === 'set' && p.value !== null) sets.set(`${p.model}.${p.name}`, p.value);
      actions.push({ at: now - start, rule: r.def.id, action: p });
    }
  };
  const evaluation = (r: SimRule, now: number) => evaluateRule(r.def, (ref) => r.inputs.get(ref), r.inputs.windowScope(now));
  const pulse = (r: SimRule, now: number, sets: Map<string, number>, given?: Evaluation) => {
    const e = given ?? evaluation(r, now);
    const fired = commit(r, eventOf(e, now));
    if (e.blocked === null) commit(r, { type: 'CONDITION', value: false, now });
    commit(r, { type: 'TICK', now });
    claim(r);
    if (fired?.context.effect === 'then') act(r, 'then', e, now, sets);
  };
  const step = (r: SimRule, now: number, why: 'change' | 'tick', sets: Map<string, number>) => {
    const e = evaluation(r, now);
    if (r.def.event !== null) {
      if (r.sequence && why === 'change') {
        if (e.blocked !== null) commit(r, { type: 'BLOCK', reason: e.blocked, now });
        if (r.sequence.step(sequenceValues(r.def, e, r.inputs.windowScope(now)), now)) return pulse(r, now, sets, e);
      }
      commit(r, { type: 'TICK', now });
      return;
    }
    let done = commit(r, eventOf(e, now));
    if (!done?.context.effect) done = commit(r, { type: 'TICK', now }) ?? done;
    claim(r);
    const effect = done?.context.effect;
    if (effect) act(r, effect, e, now, sets);
  };

  for (let n = 0; n < MAX_INSTANTS; n++) {
    // The next instant anything happens at.
    const candidates = [given[gi] ? start + given[gi]!.at : Infinity];
    for (const r of sims) candidates.push(r.nextEvery ?? Infinity, r.nextCron ?? Infinity, nextDeadline(r.state) ?? Infinity);
    for (const d of deferred) candidates.push(d.at);
    const now = Math.min(...candidates);
    if (now > until || now === Infinity) break;

    // The deferred commands due now: sent if the arbiter still lets them (else superseded or overridden: dropped).
    const dueNow = deferred.filter((d) => d.at <= now);
    deferred = deferred.filter((d) => d.at > now);
    for (const d of dueNow) {
      const v = arbiter.due(d.control, d.token, now);
      if (v === undefined) {
        const at = arbiter.dueAt(d.control, d.token);
        if (at !== undefined) deferred.push({ ...d, at: Math.max(at, now + 1) });
      } else if (v.send) actions.push({ at: now - start, rule: d.rule, action: d.action });
    }

    let changes = new Map<string, { value: number | null; quality: 'good' | 'stale' | 'bad' | 'comm-failure' }>();
    const alarms: Array<[string, string]> = [];
    while (given[gi] && start + given[gi]!.at === now) {
      const g = given[gi++]!;
      for (const [ref, v] of Object.entries(g.values ?? {})) changes.set(ref, { value: v, quality: 'good' });
      for (const [ref, q] of Object.entries(g.quality ?? {})) changes.set(ref, { value: changes.get(ref)?.value ?? null, quality: q });
      alarms.push(...Object.entries(g.alarm ?? {}));
    }
    const due = new Set<SimRule>();
    for (let round = 0; round < MAX_ROUNDS && (changes.size > 0 || round === 0); round++) {
      const sets = new Map<string, number>();
      for (const r of sims) {
        let triggered = false;
        for (const [ref, v] of changes) {
          if (!r.def.inputs.includes(ref) && !r.triggers.has(ref)) continue;
          const value = v.value ?? r.inputs.get(ref)?.value ?? null;
          // In place: the change is told by update(), not by the record read before it.
          if (r.inputs.update(ref, value, v.quality, now) && r.triggers.has(ref)) triggered = true;
        }
        if (triggered) step(r, now, 'change', sets);
        if (round > 0) continue;
        if (r.nextEvery !== null && r.nextEvery === now) {
          r.nextEvery += r.def.everyMs!;
          due.add(r);
        }
        if (r.nextCron !== null && r.nextCron === now) {
          r.nextCron = r.cron!.nextRun(new Date(now))?.getTime() ?? null;
          pulse(r, now, sets);
        }
        if (r.def.event?.kind === 'alarm') {
          const matches = alarmGlob(r.def.event.glob);
          for (const [id] of alarms) if (matches(id) && !r.def.alarms.some((a) => a.id === id)) pulse(r, now, sets);
        }
        if (due.has(r) || nextDeadline(r.state) === now) step(r, now, 'tick', sets);
      }
      changes = new Map([...sets].map(([ref, value]) => [ref, { value, quality: 'good' as const }]));
    }
  }
  return actions;
}

/** One line per action, as `voltage rules test` prints it: `15s zero-export control gw.export_limit = 25`. */
export function describeAction(a: { at: number; rule: string; action: PlannedAction }): string {
  const at = `${a.at % 1000 === 0 ? `${a.at / 1000}s` : `${a.at}ms`}`;
  const p = a.action;
  const what =
    p.kind === 'control' || p.kind === 'set'
      ? `${p.kind} ${p.model}.${p.name} = ${p.value === null ? '-' : Math.round(p.value * 1e6) / 1e6}`
      : p.kind === 'alarm'
        ? `alarm ${p.alarm} ${p.raise ? 'raise' : 'clear'}`
        : p.kind === 'notify'
          ? `notify "${p.message}"`
          : '';
  return `${at} ${a.rule} ${what}`;
}

export interface CaseResult {
  readonly name: string;
  readonly passed: boolean;
  /** Expected but not taken. */
  readonly missing: readonly string[];
  /** Taken but not expected. */
  readonly unexpected: readonly string[];
}

/** Runs one case and compares: each expected action must be taken at its time (values within 1e-6), and nothing else. */
export function runRuleTest(rules: readonly RuleDef[], tc: RuleTestConfig): CaseResult {
  const took = simulateRules(rules, tc);
  const left = [...took];
  const missing: string[] = [];
  for (const x of tc.expect) {
    const want: PlannedAction =
      'control' in x
        ? { kind: 'control', ...x.control }
        : 'set' in x
          ? { kind: 'set', ...x.set }
          : 'alarm' in x
            ? { kind: 'alarm', alarm: x.alarm.id, raise: !x.alarm.clear }
            : { kind: 'notify', message: x.notify.message, severity: x.notify.severity ?? 'info' };
    const i = left.findIndex(
      (t) => t.at === x.at && (x.rule === undefined || t.rule === x.rule) && sameAction(t.action, want, 'notify' in x ? x.notify.severity : undefined),
    );
    if (i >= 0) left.splice(i, 1);
    else missing.push(describeAction({ at: x.at, rule: x.rule ?? '*', action: want }));
  }
  const unexpected = left.map(describeAction);
  return { name: tc.name, passed: missing.length === 0 && unexpected.length === 0, missing, unexpected };
}

function sameAction(a: PlannedAction, b: PlannedAction, severity: string | undefined): boolean {
  if (a.kind !== b.kind) return false;
  if ((a.kind === 'control' || a.kind === 'set') && (b.kind === 'control' || b.kind === 'set'))
    return a.model === b.model && a.name === b.name && a.value !== null && b.value !== null && Math.abs(a.value - b.value) <= 1e-6;
  if (a.kind === 'alarm' && b.kind === 'alarm') return a.alarm === b.alarm && a.raise === b.raise;
  if (a.kind === 'notify' && b.kind === 'notify') return a.message === b.message && (severity === undefined || a.severity === b.severity);
  return false;
}
