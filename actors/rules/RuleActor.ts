/**
 * Binds ruleMachine to Redis: keeps the latest value and quality of each of
 * the rule's inputs (loaded once, then from the `modsrv:{model}:update`
 * notifications), evaluates on a change of an `onChange` value, every `every`
 * and at its own deadlines (a `for` completing, a cooldown ending), and
 * commits each step with rule_commit (compare-and-set) BEFORE running its
 * actions, so that a restart neither fires again nor forgets a running `for`:
 * it resumes from `rule:{id}`. Actions go through m2c with source `rule:{id}`
 * (tracked; the results are journaled with the execution) or model_set.
 * The Arbiter decides between rules that target one control; a command it
 * holds back by the rate limit is deferred, and this actor sends it when due
 * (if the Arbiter still lets it) and journals that as a second result of the
 * execution. Deferred commands are in memory only: a rule actor that stops
 * (the runtime stopping, the actor restarted) loses them, and journals each as
 * dropped, a second result of its execution (a kill -9 journals nothing).
 *
 * Evaluations run one at a time (a queue); a refused commit re-reads the rule
 * (an operator enabled or disabled it) and evaluates again once.
 *
 * Window functions read a bounded ring of recent values per point, kept here
 * (in memory: a restart starts the windows empty). A sequence's progress (the
 * steps seen, since when, the steps' last values) is committed with the rule
 * (`rule:{id}` field `sequence`, same rule_commit, same version check) each
 * time it changes, in the same commit as the fire when it completes; a
 * restart resumes it, or drops it when its window passed meanwhile. An event trigger (cron, a
 * matching alarm's change, a sequence completing) is a pulse: CONDITION{when}
 * then CONDITION{false} at the same instant, so the rule fires once per event
 * (cooldown permitting) and is idle again; the second step is not journaled.
 * Rule alarms are alarm:{id} records of their own (initialised here), raised
 * and cleared by alarm_commit like any other alarm.
 */
import { Cron } from 'croner';
import { initialAlarm, stepAlarm, stepReason } from '../../machines/alarmMachine.js';
import { initialRule, nextDeadline, ruleMachine, stepRule, type RuleEvent, type RuleSnapshotData } from '../../machines/ruleMachine.js';
import { alarmGlob } from '../../runtime/config/rules.js';
import { AlarmRefusedError } from '../../runtime/redis/alarms.js';
import type { ActorKind } from '../../runtime/actorKind.js';
import type { RunningChild, ChildSpec, ExitReason } from '../../runtime/childSpec.js';
import type { RuleDef } from '../../runtime/config/site.js';
import type { Quality } from '../../runtime/domain/telemetry.js';
import { errorMessage } from '../../runtime/errors.js';
import type { Logger } from '../../runtime/logger.js';
import { KEYS } from '../../runtime/redis/keys.js';
import { RuleConflictError, type StoredRule } from '../../runtime/redis/rules.js';
import type { Subscriptions } from '../../runtime/redis/subscriptions.js';
import type { VoltageRedis } from '../../runtime/redis/voltageRedis.js';
import type { ActorRegistry } from '../../runtime/registry.js';
import { Arbiter, type Mark } from './arbiter.js';
import { commandEnds } from './commandEnds.js';
import { ResultsJournal } from './resultsJournal.js';
import { RuleUpdates } from './ruleUpdates.js';
import {
  conditionOf,
  evaluateRule,
  eventOf,
  planActions,
  parseSequenceProgress,
  RuleInputs,
  SequenceTracker,
  sequenceText,
  sequenceValues,
  type Evaluation,
  type PlannedAction,
} from '../../runtime/domain/ruleEvaluation.js';
import { settled } from '../../runtime/reporter.js';
import { TRACE_KINDS, trace, traceName, traceNow, tracing } from '../../runtime/trace.js';

export interface RuleActorDeps {
  readonly redis: VoltageRedis;
  readonly subscriptions: Subscriptions;
  readonly registry: ActorRegistry;
  readonly log: Logger;
  readonly arbiter: Arbiter;
  /** Where the executions' results go (batched; one per process). */
  readonly results: ResultsJournal;
  /** Reads the model updates for the rules (once per message for all of them; one per process). */
  readonly updates: RuleUpdates;
  /** How long a command may take before it ends as timeout (m2c). */
  readonly commandTimeoutMs?: number;
}

export const ruleActorId = (id: string): string => `rule/${id}`;

/** The states whose machine takes a TICK (in the others it changes nothing), read off the machine. */
const TICKING = new Set(
  Object.entries(ruleMachine.states)
    .filter(([, node]) => node.ownEvents.includes('TICK'))
    .map(([name]) => name),
);

/**
 * The states without deadlines (no TICK): there a CONDITION's guards and the assigners of its quiet branch read
 * the condition and the context, not the event's time, so a condition found quiet stays quiet until the next commit.
 * test/unit/rule-machine.test.ts holds the machine to it.
 */
export const TIMELESS_CONDITION: ReadonlySet<string> = new Set(Object.keys(ruleMachine.states).filter((name) => !TICKING.has(name)));

/** What the definition looks like in `rule:{id}` (for the API): the texts, not the compiled expressions. */
export function ruleDefinition(def: RuleDef): Record<string, unknown> {
  const act = (a: RuleDef['then'][number]) =>
    a.kind === 'control' || a.kind === 'set' ? { kind: a.kind, model: a.model, name: a.name, value: a.value.source, minIntervalMs: a.minIntervalMs } : a;
  const ev = def.event;
  return {
    id: def.id,
    enabled: def.enabled,
    priority: def.priority,
    onChange: def.onChange,
    everyMs: def.everyMs,
    event: ev?.kind === 'sequence' ? { kind: 'sequence', steps: ev.steps.map((x) => x.source), withinMs: ev.withinMs } : ev,
    alarms: def.alarms,
    when: def.when.source,
    forMs: def.forMs,
    cooldownMs: def.cooldownMs,
    then: def.then.map(act),
    else: def.else.map(act),
    inputs: def.inputs,
  };
}

type ActionOutcome = PlannedAction & {
  readonly outcome:
    | 'sent'
    | 'set'
    | 'overridden'
    | 'deferred'
    | 'superseded'
    | 'dropped'
    | 'skipped'
    | 'rejected'
    | 'raised'
    | 'cleared'
    | 'unchanged'
    | 'notified';
  /** A deferred command: when it is due (ms since the epoch). */
  readonly at?: number;
  readonly commandId?: string;
  readonly status?: string;
  readonly by?: string;
  readonly message?: string;
  readonly eventId?: string;
};

const TERMINAL_WAIT_MS = 15_000;

/** A step committed by a rule actor, with the execution it started. */
interface Committed {
  readonly to: RuleSnapshotData;
  readonly entryId: string;
  /** The execution's actions as planned (its branch's list; empty when the step started none). */
  readonly planned: readonly PlannedAction[];
  /** What became of its control actions, by index in `planned`: sent with the step, refused, overridden, deferred, skipped. */
  readonly controls: ReadonlyMap<number, ActionOutcome>;
  /** Its commands held back by the rate limit, to send when due (the arbiter permitting). */
  readonly deferrals: readonly Deferral[];
  /** Whether the execution is acted on (its commands went with the step). */
  readonly sent: boolean;
}

/** A command of an execution held back by the rate limit: the arbiter's token for it, and when it is due. */
interface Deferral {
  readonly index: number;
  readonly control: string;
  readonly token: number;
  readonly at: number;
  readonly model: string;
  readonly name: string;
  readonly value: number;
}

/** The control actions of an execution, as the arbiter decided them before the step is committed. */
interface Sending {
  readonly outcomes: Map<number, ActionOutcome>;
  readonly commands: Array<{ index: number; control: string; model: string; name: string; value: number }>;
  readonly deferrals: Deferral[];
  /** Each decision's control and the arbiter's state before it, in order: given back (in reverse) when the step is not committed. */
  readonly marks: Array<{ control: string; before: Mark }>;
}

/**
 * What is stored, kept with the step's effect cleared (the effect belongs to the committed step, read off
 * `to`): stepRule clears it before each step, and would otherwise copy the context on every evaluation.
 */
function withoutEffect<T extends StoredRule>(s: T): T {
  return s.context.effect === null ? s : { ...s, context: { ...s.context, effect: null } };
}

/** A value rule acts on every execution; an event rule's pulse on its fire only. */
const ACT_ALWAYS = (): boolean => true;
const ACT_ON_FIRE = (effect: 'then' | 'else'): boolean => effect === 'then';

export function ruleChild(def: RuleDef, deps: RuleActorDeps): ChildSpec {
  const id = ruleActorId(def.id);
  const who = id;
  return {
    id,
    restart: 'permanent',
    type: 'worker',
    async start(): Promise<RunningChild> {
      const log = deps.log.child({ actor: id });
      const inputs = new RuleInputs(def);
      const models = new Set(def.models);
      const needed = new Set([...def.inputs, ...def.onChange]);
      let stopped = false;
      let listener: ((r: ExitReason) => void) | undefined;
      let exited: ExitReason | undefined;
      const timers = new Set<NodeJS.Timeout>();
      const unsubscribe: Array<() => Promise<void>> = [];
      /** Results on their way to the journal: a stopping rule writes them first (their commands end as pending). */
      const journaling = new Set<Promise<void>>();
      const controls = [...def.then, ...def.else].flatMap((a) => (a.kind === 'control' ? [`${a.model}.${a.name}`] : []));

      for (const a of def.alarms) {
        const init = initialAlarm({ severity: a.severity });
        await deps.redis.alarms.init({
          id: a.id,
          ts: Date.now(),
          severity: a.severity,
          context: init.context,
          definition: JSON.stringify({ id: a.id, rule: a.rule, severity: a.severity, message: a.message, source: 'rule' }),
        });
      }

      let stored: StoredRule = withoutEffect(
        await deps.redis.rules.init(def.id, initialRule({ forMs: def.forMs, cooldownMs: def.cooldownMs }), ruleDefinition(def)),
      );
      // A sequence under way resumes from what was committed, unless its window passed while the rule was not running.
      const sequence =
        def.event?.kind === 'sequence' ? new SequenceTracker(def.event.steps.length, def.event.withinMs, parseSequenceProgress(stored.sequence)) : undefined;
      sequence?.expire(Date.now());
      /** The progress last handed to the queue for committing ('' none under way). */
      let queuedSequence = sequence ? sequenceText(sequence.snapshot()) : '';
      if (!def.enabled && stored.version === 1 && stored.state === 'idle') await commit({ type: 'DISABLE', now: Date.now() }, 'config', undefined);
      // Only what was committed is reported: an evaluation that changed nothing has nothing new to say.
      let reported = -1;
      const report = (event: string) => {
        if (stored.version === reported) return;
        reported = stored.version;
        deps.registry.snapshot(id, stored.state, () => ({ version: stored.version, fires: stored.context.fires, blocked: stored.context.blocked }), event);
      };
      const claimControls = () => {
        for (const c of controls) {
          if (stored.state === 'active') deps.arbiter.claim(c, { rule: def.id, priority: def.priority });
          else deps.arbiter.release(c, def.id);
        }
      };
      claimControls();
      report('init');

      const fail = (error: unknown) => {
        if (exited || stopped) return;
        exited = { kind: 'error', error };
        void dispose().then(() => listener?.(exited!));
      };

      // One evaluation at a time.
      let queue: Promise<void> = Promise.resolve();
      /** Evaluations queued and not finished: while any is, `stored` may be about to change. */
      let queued = 0;
      const done = () => {
        queued--;
      };
      const evaluate = (trigger: string, progress?: string, now = Date.now()) => {
        // The common case, decided at once: a change or an `every` with nothing queued, and the evaluation would commit nothing.
        // (A deadline always goes through step(), which arms the next one.)
        if (queued === 0 && (trigger === 'change' || trigger === 'every') && progress === undefined && !stopped && quietNow(now)) return;
        if (tracing) trace(TRACE_KINDS.ruleQueued, traceNow(), 0, traceName(def.id));
        queued++;
        queue = queue
          .then(() => step(trigger, progress))
          .catch(fail)
          .finally(done);
      };
      const fireEvent = (trigger: string, e?: Evaluation, now?: number, progress?: string) => {
        queued++;
        queue = queue
          .then(() => pulse(trigger, e, now, progress))
          .catch(fail)
          .finally(done);
      };

      /**
       * The control actions of an execution about to be committed, decided by the arbiter now: those it lets
       * through go to rule_commit with the step; the others are answered here (overridden, deferred, skipped).
       */
      function arbitrate(branch: 'then' | 'else', planned: readonly PlannedAction[], now: number): Sending {
        const list = branch === 'then' ? def.then : def.else;
        const sending: Sending = { outcomes: new Map(), commands: [], deferrals: [], marks: [] };
        const { outcomes, commands } = sending;
        for (const [i, p] of planned.entries()) {
          const a = list[i]!;
          if (a.kind !== 'control' || p.kind !== 'control') continue;
          if (p.value === null) {
            outcomes.set(i, { ...p, outcome: 'skipped', message: 'the value is not a number' });
            continue;
          }
          const control = `${a.model}.${a.name}`;
          sending.marks.push({ control, before: deps.arbiter.mark(control) });
          const verdict = deps.arbiter.decide(control, { rule: def.id, priority: def.priority }, a.minIntervalMs, now);
          if (verdict.send) commands.push({ index: i, control, model: a.model, name: a.name, value: p.value });
          else if (verdict.why === 'overridden') outcomes.set(i, { ...p, outcome: 'overridden', by: verdict.by });
          else {
            outcomes.set(i, { ...p, outcome: 'deferred', at: verdict.at });
            sending.deferrals.push({ index: i, control, token: verdict.token, at: verdict.at, model: a.model, name: a.name, value: p.value });
          }
        }
        return sending;
      }

      /**
       * Commits one step of the machine, with the sequence's progress when given; a step that changes
       * nothing is not committed, unless the progress differs from what is stored (then the state stays).
       * `send`: whether the execution the step starts (if any) is acted on; its control commands are then
       * sent by the same rule_commit, so that they are accepted with the step (one round trip).
       */
      async function commit(
        event: RuleEvent,
        trigger: string,
        e: Evaluation | undefined,
        journal = true,
        progress?: string,
        send?: (effect: 'then' | 'else') => boolean,
      ): Promise<Committed | undefined> {
        for (let attempt = 0; attempt < 2; attempt++) {
          let to = stepRule(stored, event);
          if (!to) {
            if (progress === undefined || progress === stored.sequence) return undefined;
            to = { state: stored.state, context: { ...stored.context, effect: null } };
          }
          const effect = to.context.effect;
          const planned = effect && e ? planActions(effect === 'then' ? def.then : def.else, e, inputs.windowScope(event.now)) : undefined;
          const execution =
            effect && journal ? { trigger, inputs: e?.inputs ?? {}, condition: e?.condition ?? null, branch: effect, actions: planned ?? [] } : undefined;
          const counter = effect === 'then' ? 'fires' : effect === 'else' ? 'releases' : to.context.blocked && !stored.context.blocked ? 'blocked' : '';
          const sending = effect && planned && execution && send?.(effect) ? arbitrate(effect, planned, event.now) : undefined;
          // The registry's report of the step, when one is due now (a change of state): written by the same call.
          const version = stored.version + 1;
          const prepared = deps.registry.prepare(id, to.state, () => ({ version, fires: to.context.fires, blocked: to.context.blocked }), trigger);
          try {
            const r = await deps.redis.rules.commit({
              id: def.id,
              expectedVersion: stored.version,
              to,
              ts: event.now,
              who: trigger === 'config' ? 'config' : who,
              execution,
              counter,
              ...(progress === undefined ? {} : { sequence: progress }),
              ...(sending ? { commands: sending.commands, commandTimeoutMs: deps.commandTimeoutMs ?? 10_000 } : {}),
              ...(prepared ? { report: prepared } : {}),
            });
            stored = withoutEffect({ ...to, version: r.version, sequence: progress ?? stored.sequence });
            if (prepared) {
              deps.registry.wrote(prepared);
              reported = r.version;
            }
            const controls = sending?.outcomes ?? new Map<number, ActionOutcome>();
            for (const [k, c] of (sending?.commands ?? []).entries()) {
              const p = planned![c.index]!;
              const sent = r.commands[k];
              controls.set(
                c.index,
                sent && 'commandId' in sent
                  ? { ...p, outcome: 'sent', commandId: sent.commandId }
                  : { ...p, outcome: 'rejected', message: sent?.refused ?? 'not sent' },
              );
            }
            return { to, entryId: r.entryId, planned: planned ?? [], controls, deferrals: sending?.deferrals ?? [], sent: sending !== undefined };
          } catch (err) {
            // Nothing was sent or deferred: the arbiter is given back its state (in reverse, for a control named twice).
            for (const m of (sending?.marks ?? []).reverse()) deps.arbiter.withdraw(m.control, m.before);
            if (!(err instanceof RuleConflictError)) throw err;
            // Someone committed first (an operator's enable or disable): take what is stored and try again.
            stored = withoutEffect(await deps.redis.rules.init(def.id, initialRule({ forMs: def.forMs, cooldownMs: def.cooldownMs }), ruleDefinition(def)));
          }
        }
        return undefined;
      }

      const evaluation = (now: number): Evaluation => evaluateRule(def, inputs.read, inputs.windowScope(now));
      const quietCondition: { type: 'CONDITION'; value: boolean; now: number } = { type: 'CONDITION', value: false, now: 0 };
      /**
       * The stored step and the condition last found quiet in a state without deadlines: the same condition on the
       * same step is quiet again without asking stepRule. There a CONDITION's outcome does not read its time
       * (TIMELESS_CONDITION, tested as a law), and a commit replaces `stored`, which ends the memo.
       */
      let quietStored: StoredRule | undefined;
      let quietValue = false;

      /**
       * Whether an evaluation of a value rule now would commit nothing (the condition as already seen,
       * no deadline due): then step() would only evaluate, so it need not be queued. Event rules always queue.
       */
      function quietNow(now: number): boolean {
        if (def.event !== null) return false;
        const windows = inputs.windowScope(now);
        const c = conditionOf(def, inputs.read, inputs.value, windows);
        if (c === undefined) {
          // Not plain (an input not good, a condition not a number): the full evaluation says which event.
          if (stepRule(stored, eventOf(evaluateRule(def, inputs.read, windows), now))) return false;
        } else {
          if (quietStored === stored && quietValue === c) return true;
          // One event object for the rule's life: stepRule keeps nothing of it (it copies what it assigns).
          quietCondition.value = c;
          quietCondition.now = now;
          if (stepRule(stored, quietCondition)) return false;
          if (TIMELESS_CONDITION.has(stored.state)) {
            quietStored = stored;
            quietValue = c;
            return true;
          }
        }
        return !TICKING.has(stored.state) || stepRule(stored, { type: 'TICK', now }) === undefined;
      }

      async function step(trigger: string, progress?: string): Promise<void> {
        if (stopped) return;
        if (tracing) trace(TRACE_KINDS.ruleStep, traceNow(), 0, traceName(def.id));
        const now = Date.now();
        const e = evaluation(now);
        if (def.event !== null) {
          // An event rule: a blocked sequence records why; the deadlines (a cooldown ending) are TICKs.
          if (sequence && e.blocked !== null) await commit({ type: 'BLOCK', reason: e.blocked, now }, trigger, e);
          await commit({ type: 'TICK', now }, trigger, e, true, progress);
          report(trigger);
          schedule();
          return;
        }
        let done = await commit(eventOf(e, now), trigger, e, true, undefined, ACT_ALWAYS);
        // A deadline due at the same time (a `for` completing, a cooldown ending) is a TICK after it.
        if (!done?.to.context.effect && TICKING.has(stored.state))
          done = (await commit({ type: 'TICK', now }, trigger, e, true, undefined, ACT_ALWAYS)) ?? done;
        claimControls();
        report(trigger);
        schedule();
        if (done?.sent) await act(done, now);
      }

      /** An event: `when` now, fired as a pulse (true then false at once); the release is not journaled. */
      async function pulse(trigger: string, given?: Evaluation, at?: number, progress?: string): Promise<void> {
        if (stopped) return;
        const now = at ?? Date.now();
        const e = given ?? evaluation(now);
        // A completed sequence's progress (none under way) is committed with the fire: a restart cannot fire it twice.
        const done = await commit(eventOf(e, now), trigger, e, true, progress, ACT_ON_FIRE);
        if (e.blocked === null) await commit({ type: 'CONDITION', value: false, now }, trigger, e, false);
        await commit({ type: 'TICK', now }, trigger, e);
        claimControls();
        report(trigger);
        schedule();
        if (done?.sent) await act(done, now);
      }

      /** Raises or clears a rule alarm: one alarm_commit from what is stored (compare-and-set; once more on a conflict). */
      async function ruleAlarm(id: string, raise: boolean, now: number): Promise<'raised' | 'cleared' | 'unchanged'> {
        for (let attempt = 0; ; attempt++) {
          const a = await deps.redis.alarms.get(id);
          if (!a) throw new Error(`rule alarm '${id}' is not initialised`);
          const from = { state: a.state, context: a.context };
          const event = { type: raise ? ('CONDITION_ON' as const) : ('CONDITION_OFF' as const), now };
          const next = stepAlarm(from, event);
          if (!next) return 'unchanged';
          try {
            await deps.redis.alarms.commit({
              id,
              expectedVersion: a.version,
              event: event.type,
              to: next.state,
              severity: next.context.severity,
              context: next.context,
              who,
              why: `${stepReason(from, next, event)} by rule ${def.id}`,
              value: null,
              ts: now,
              group: a.group,
              chattering: a.chattering,
            });
            return raise ? 'raised' : 'cleared';
          } catch (err) {
            if (!(err instanceof AlarmRefusedError) || err.refusal !== 'VERSION_CONFLICT' || attempt > 0) throw err;
          }
        }
      }

      /** Runs an execution's actions in order; its control commands went with the step (their outcomes are in `done`). */
      async function act(done: Committed, now: number): Promise<void> {
        const { entryId, planned } = done;
        const branch = done.to.context.effect === 'else' ? 'else' : 'then';
        const outcomes: ActionOutcome[] = [];
        const list = branch === 'then' ? def.then : def.else;
        for (const [i, p] of planned.entries()) {
          if (p.kind === 'alarm') {
            try {
              outcomes.push({ ...p, outcome: await ruleAlarm(p.alarm, p.raise, now) });
            } catch (err) {
              outcomes.push({ ...p, outcome: 'rejected', message: errorMessage(err) });
            }
            continue;
          }
          if (p.kind === 'notify') {
            try {
              const eventId = await deps.redis.rules.notify({ rule: def.id, severity: p.severity, message: p.message, time: now, execution: entryId });
              outcomes.push({ ...p, outcome: 'notified', eventId });
            } catch (err) {
              outcomes.push({ ...p, outcome: 'rejected', message: errorMessage(err) });
            }
            continue;
          }
          const a = list[i]!;
          if (a.kind === 'control') {
            outcomes.push(done.controls.get(i) ?? { ...p, outcome: 'skipped', message: 'not sent' });
            continue;
          }
          if (a.kind !== 'set') continue;
          if (p.value === null) {
            outcomes.push({ ...p, outcome: 'skipped', message: 'the value is not a number' });
            continue;
          }
          await deps.redis.telemetry.modelSet(a.model, now, [{ name: a.name, value: p.value, quality: 'good' }]);
          outcomes.push({ ...p, outcome: 'set' });
        }
        const count = (o: ActionOutcome['outcome']) => outcomes.filter((x) => x.outcome === o).length;
        // The commands are tracked to their end in the background; the journal gets their results (batched).
        const journaled = (async () => {
          const results = await Promise.all(outcomes.map(async (o) => (o.commandId ? { ...o, status: await commandEnd(o.commandId) } : o)));
          await deps.results.add({
            id: def.id,
            of: entryId,
            results: { branch, actions: results },
            counters: { commands: count('sent'), overridden: count('overridden'), rateLimited: count('deferred') },
            ts: Date.now(),
          });
        })()
          .catch((err: unknown) => log.warn({ err }, 'could not journal the results of an execution'))
          .finally(() => journaling.delete(journaled));
        journaling.add(journaled);
        for (const d of done.deferrals) defer(d, planned[d.index]!, entryId, branch, journaled);
      }

      /** The deferrals armed and not yet due (timer → deferral), cancelled in the arbiter and journaled dropped when the rule stops. */
      const deferred = new Map<NodeJS.Timeout, () => void>();

      /**
       * A deferred command the rule will not send (it stopped before the command was due): the arbiter forgets it and
       * the journal says so, as a second result of its execution, so that nothing accepted disappears silently.
       * Best effort: Redis may be gone with the rule.
       */
      function drop(d: Deferral, p: PlannedAction, entryId: string, branch: 'then' | 'else', first: Promise<void>): void {
        deps.arbiter.cancel(d.control, d.token);
        const journaled = (async () => {
          await first;
          await deps.results.add({
            id: def.id,
            of: entryId,
            results: {
              branch,
              deferred: { index: d.index, at: d.at },
              actions: [{ ...p, outcome: 'dropped', message: 'the rule stopped before the command was due' }],
            },
            counters: {},
            ts: Date.now(),
          });
        })()
          .catch((err: unknown) => log.warn({ err }, 'could not journal a dropped deferred command'))
          .finally(() => journaling.delete(journaled));
        journaling.add(journaled);
      }

      /**
       * Sends a deferred command when it is due, if the arbiter still lets it (not superseded by a later decision
       * for the control, the rule still winning it); journals what became of it as a second result of the same
       * execution (`of`), after the first (`first`): its command id and end, or `superseded` / `overridden`.
       */
      function defer(d: Deferral, p: PlannedAction, entryId: string, branch: 'then' | 'else', first: Promise<void>): void {
        if (stopped) {
          drop(d, p, entryId, branch, first);
          return;
        }
        const t = setTimeout(
          () => {
            timers.delete(t);
            deferred.delete(t);
            if (stopped) {
              drop(d, p, entryId, branch, first);
              return;
            }
            const verdict = deps.arbiter.due(d.control, d.token, Date.now());
            // Woken a little early (a timer's rounding): armed again for when it is due.
            if (verdict === undefined) {
              defer({ ...d, at: deps.arbiter.dueAt(d.control, d.token) ?? d.at }, p, entryId, branch, first);
              return;
            }
            const journaled = (async () => {
              let result: ActionOutcome;
              if (!verdict.send) result = { ...p, outcome: verdict.why, ...(verdict.why === 'overridden' ? { by: verdict.by } : {}) };
              else {
                try {
                  const commandId = await deps.redis.commands.m2c(d.model, d.name, d.value, `rule:${def.id}`, deps.commandTimeoutMs ?? 10_000);
                  result = { ...p, outcome: 'sent', commandId, status: await commandEnd(commandId) };
                } catch (err) {
                  result = { ...p, outcome: 'rejected', message: errorMessage(err) };
                }
              }
              await first;
              await deps.results.add({
                id: def.id,
                of: entryId,
                results: { branch, deferred: { index: d.index, at: d.at }, actions: [result] },
                counters: { commands: result.outcome === 'sent' ? 1 : 0, overridden: result.outcome === 'overridden' ? 1 : 0 },
                ts: Date.now(),
              });
            })()
              .catch((err: unknown) => log.warn({ err }, 'could not send or journal a deferred command'))
              .finally(() => journaling.delete(journaled));
            journaling.add(journaled);
          },
          Math.max(0, d.at - Date.now()),
        );
        timers.add(t);
        deferred.set(t, () => drop(d, p, entryId, branch, first));
      }

      function commandEnd(commandId: string): Promise<string> {
        return ends.wait(commandId, TERMINAL_WAIT_MS, stopping.signal);
      }

      let deadlineTimer: NodeJS.Timeout | undefined;
      function schedule(): void {
        if (deadlineTimer) {
          clearTimeout(deadlineTimer);
          timers.delete(deadlineTimer);
        }
        const at = nextDeadline(stored);
        if (at === null || stopped) return;
        deadlineTimer = setTimeout(() => evaluate('deadline'), Math.max(0, at - Date.now()));
        timers.add(deadlineTimer);
      }

      const triggers = new Set(def.event?.kind === 'sequence' ? def.inputs : def.onChange);
      // The rule's inputs per model: an update of 100 values is looked up for the rule's few, not walked whole.
      const neededOf = new Map<string, Array<{ name: string; ref: string; trigger: boolean }>>();
      for (const ref of needed) {
        const dot = ref.indexOf('.');
        const list = neededOf.get(ref.slice(0, dot)) ?? [];
        list.push({ name: ref.slice(dot + 1), ref, trigger: triggers.has(ref) });
        neededOf.set(ref.slice(0, dot), list);
      }
      // The names it reads of each model, so that one reading of a notification serves every rule of the model.
      for (const [model, list] of neededOf) {
        deps.updates.want(
          model,
          list.map((x) => x.name),
        );
      }
      const apply = (model: string, values: Readonly<Record<string, number>>, qualities: Readonly<Record<string, string>> | undefined, t: number): boolean => {
        let triggered = false;
        const list = neededOf.get(model);
        if (list === undefined) return false;
        for (const { name, ref, trigger } of list) {
          if (!(name in values) && !(qualities && name in qualities)) continue;
          const prev = inputs.get(ref);
          const value = values[name] ?? prev?.value ?? null;
          const quality = (qualities?.[name] as Quality | undefined) ?? (name in values ? 'good' : (prev?.quality ?? null));
          // In place: `prev` is the same record afterwards, so the change is told by update().
          if (inputs.update(ref, value, quality, t) && trigger) triggered = true;
        }
        return triggered;
      };

      // The ends of the commands it sends, told by cmd:result (subscribed before the first can be sent).
      const ends = commandEnds(deps.subscriptions, deps.redis.commands);
      const stopping = new AbortController();
      await ends.ready;
      for (const model of models) {
        unsubscribe.push(
          await deps.subscriptions.on(KEYS.modelUpdate(model), (message) => {
            const u = deps.updates.read(model, message);
            if (!u) return;
            const now = Date.now();
            if (!apply(model, u.values, u.quality, Math.min(u.ts, now))) return;
            if (!sequence) return evaluate('change', undefined, now);
            // A sequence sees every update in order, here, before the next one is applied (evaluations are queued).
            const e = evaluation(now);
            const completed = sequence.step(sequenceValues(def, e, inputs.windowScope(now)), now);
            const progress = sequenceText(sequence.snapshot());
            const changed = progress !== queuedSequence;
            queuedSequence = progress;
            if (completed) fireEvent('sequence', e, now, progress);
            else if (changed || e.blocked !== null) evaluate('change', changed ? progress : undefined);
          }),
        );
      }
      for (const model of models) {
        for (const [name, r] of await deps.redis.telemetry.modelValues(model)) {
          const ref = `${model}.${name}`;
          if (needed.has(ref) && !inputs.has(ref)) inputs.set(ref, { value: r.value, quality: r.quality ?? 'good' }, Date.now());
        }
      }
      if (def.everyMs !== null) {
        const every = setInterval(() => evaluate('every'), def.everyMs);
        timers.add(every);
      }
      const ev = def.event;
      if (ev?.kind === 'cron') {
        const cron = new Cron(ev.cron, { paused: true, ...(ev.timezone ? { timezone: ev.timezone } : {}) });
        let cronTimer: NodeJS.Timeout | undefined;
        const next = () => {
          if (cronTimer) timers.delete(cronTimer);
          const at = cron.nextRun();
          if (!at || stopped) return;
          // setTimeout takes at most ~24.8 days: a later run is re-armed on the way.
          const wait = Math.min(at.getTime() - Date.now(), 2 ** 31 - 1);
          cronTimer = setTimeout(
            () => {
              if (Date.now() >= at.getTime() - 5) fireEvent(`cron ${ev.cron}`);
              next();
            },
            Math.max(0, wait),
          );
          timers.add(cronTimer);
        };
        next();
      }
      if (ev?.kind === 'alarm') {
        const matches = alarmGlob(ev.glob);
        const own = new Set(def.alarms.map((a) => a.id));
        unsubscribe.push(
          await deps.subscriptions.on(KEYS.alarmUpdate, (message) => {
            let m: { id?: unknown; from?: unknown; to?: unknown };
            try {
              m = JSON.parse(message) as typeof m;
            } catch {
              return;
            }
            if (typeof m.id !== 'string' || own.has(m.id) || !matches(m.id) || m.from === m.to) return;
            fireEvent(`alarm ${m.id} ${String(m.from)}→${String(m.to)}`);
          }),
        );
      }
      evaluate('start', sequence ? queuedSequence : undefined);

      async function dispose(): Promise<void> {
        stopped = true;
        stopping.abort();
        // A deferred command not yet due is lost with the rule (kept in memory only; nobody else would send it): journaled dropped.
        for (const dropIt of deferred.values()) dropIt();
        deferred.clear();
        for (const t of timers) {
          clearTimeout(t);
          clearInterval(t);
        }
        await Promise.all(unsubscribe.splice(0).map((u) => u()));
        await settled(queue, { source: 'rule dispose', rule: def.id });
        if (journaling.size > 0) {
          void deps.results.flush();
          await Promise.allSettled([...journaling]);
        }
      }
      return {
        async stop() {
          await dispose();
        },
        onExit(l) {
          listener = l;
          if (exited) l(exited);
        },
      };
    },
  };
}

/** Rules: one actor per rule, under their own supervisor (absent from the tree when the site has none). */
export const ruleKind: ActorKind = {
  kind: 'rule',
  section: 'rules',
  supervisor: { id: 'rules', strategy: 'one_for_one', policy: (rt) => rt.models },
  optional: true,
  children: (site, deps) => {
    const arbiter = new Arbiter();
    // deps.redis read when a batch is written, not here: planning the tree starts nothing and touches no dependency.
    const results = new ResultsJournal({ recordMany: (r) => deps.redis.rules.recordMany(r) });
    const updates = new RuleUpdates();
    return site.rules.map((r) => ruleChild(r, { ...deps, arbiter, results, updates, commandTimeoutMs: site.gateway?.commandTimeoutMs }));
  },
};
