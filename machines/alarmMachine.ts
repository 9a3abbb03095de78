/**
 * The life of one alarm (ISA-18.2 / IEC 62682; latching as in OPC UA Part 9).
 * Persisted (the `alarm:{id}` hash): the transitions that the Redis Function
 * `alarm_commit` accepts are generated from this definition (`alarmTransitions`),
 * never written a second time by hand.
 *
 * The machine is pure. Its input events are already filtered (deadband, on- and
 * off-delays: machines/alarmCondition.ts). It keeps no XState `after` timers:
 * those are lost when a snapshot is restored, so the shelve expiry and the
 * escalation deadline are absolute times in context, and a TICK{now} from the
 * actor's clock fires them. Every event carries its time (`now`), so the same
 * events give the same context wherever they are replayed.
 *
 * Law: no guard ever refuses an event outright. Guards only choose between
 * targets, so whether an event is accepted depends on the state alone, and the
 * state × event table that Lua checks rejects exactly what this machine ignores
 * (TICK excepted: a TICK with nothing due is no change and is never committed).
 */
import { assign, initialTransition, setup, transition } from 'xstate';
import { directStepOf, inertStepOf } from './quietStep.js';

export const SEVERITIES = ['warning', 'minor', 'major', 'critical'] as const;
export type Severity = (typeof SEVERITIES)[number];

export type AlarmState = 'normal' | 'unacknowledged' | 'acknowledged' | 'returnedUnack' | 'latched' | 'shelved' | 'suppressed' | 'outOfService';

export type AlarmEvent =
  | { readonly type: 'CONDITION_ON'; readonly now: number }
  | { readonly type: 'CONDITION_OFF'; readonly now: number }
  | { readonly type: 'ACK'; readonly now: number }
  | { readonly type: 'SHELVE'; readonly now: number; readonly durationMs: number }
  | { readonly type: 'SHELVE'; readonly now: number; readonly oneShot: true }
  | { readonly type: 'UNSHELVE'; readonly now: number }
  | { readonly type: 'RESET'; readonly now: number }
  | { readonly type: 'SUPPRESS'; readonly now: number }
  | { readonly type: 'UNSUPPRESS'; readonly now: number }
  | { readonly type: 'OUT_OF_SERVICE'; readonly now: number }
  | { readonly type: 'IN_SERVICE'; readonly now: number }
  | { readonly type: 'TICK'; readonly now: number };

export type AlarmEventType = AlarmEvent['type'];
export const ALARM_EVENT_TYPES: readonly AlarmEventType[] = [
  'CONDITION_ON',
  'CONDITION_OFF',
  'ACK',
  'SHELVE',
  'UNSHELVE',
  'RESET',
  'SUPPRESS',
  'UNSUPPRESS',
  'OUT_OF_SERVICE',
  'IN_SERVICE',
  'TICK',
];

export interface AlarmInput {
  readonly severity: Severity;
  readonly latch?: boolean;
  /** Unacknowledged this long: the severity rises one step (again after as long, up to critical). */
  readonly escalateAfterMs?: number | null;
  /** Acknowledged but still active this long: announced again (unacknowledged). */
  readonly reAlarmMs?: number | null;
}

export interface AlarmContext {
  /** The filtered condition, also tracked while shelved, suppressed or out of service. */
  readonly conditionActive: boolean;
  readonly severity: Severity;
  readonly baseSeverity: Severity;
  readonly latch: boolean;
  readonly escalateAfterMs: number | null;
  /** Absolute ms; null: no escalation pending. */
  readonly escalateAt: number | null;
  readonly reAlarmMs: number | null;
  /** Absolute ms at which an acknowledged, still active alarm is announced again; null: none pending. */
  readonly reAlarmAt: number | null;
  /** Absolute ms of a timed shelve's end; null for a one-shot shelve or when not shelved. */
  readonly shelvedUntil: number | null;
  /** One-shot shelve: ends at the next return to normal. */
  readonly oneShot: boolean;
}

function raise(s: Severity): Severity {
  return SEVERITIES[Math.min(SEVERITIES.indexOf(s) + 1, SEVERITIES.length - 1)]!;
}

/** The escalation deadline for an alarm raised (or re-raised) at `now`. */
function firstEscalation(ctx: AlarmContext, now: number): number | null {
  return ctx.escalateAfterMs !== null && ctx.severity !== 'critical' ? now + ctx.escalateAfterMs : null;
}

/** Leaving shelved, suppressed or out of service: the condition decides where to go. */
const recheck = [
  { guard: 'conditionActive', target: 'unacknowledged', actions: 'raised' },
  { target: 'normal', actions: 'backToNormal' },
] as const;

/** Taking an alarm out of view, from any state that shows it. */
const removals = {
  SHELVE: { target: 'shelved', actions: 'shelve' },
  SUPPRESS: { target: 'suppressed', actions: 'clearDeadlines' },
  OUT_OF_SERVICE: { target: 'outOfService', actions: 'clearDeadlines' },
} as const;

export const alarmMachine = setup({
  types: { context: {} as AlarmContext, events: {} as AlarmEvent, input: {} as AlarmInput },
  guards: {
    conditionActive: ({ context }) => context.conditionActive,
    latching: ({ context }) => context.latch,
    escalationDue: ({ context, event }) => context.escalateAt !== null && event.now >= context.escalateAt,
    reAlarmDue: ({ context, event }) => context.reAlarmAt !== null && event.now >= context.reAlarmAt,
    shelveExpired: ({ context, event }) => context.shelvedUntil !== null && event.now >= context.shelvedUntil,
    shelveExpiredActive: ({ context, event }) => context.shelvedUntil !== null && event.now >= context.shelvedUntil && context.conditionActive,
    oneShot: ({ context }) => context.oneShot,
  },
  actions: {
    conditionOn: assign({ conditionActive: true }),
    conditionOff: assign({ conditionActive: false }),
    raised: assign(({ context, event }) => ({
      conditionActive: true,
      escalateAt: firstEscalation(context, event.now),
      reAlarmAt: null,
      shelvedUntil: null,
      oneShot: false,
    })),
    acknowledged: assign(({ context, event }) => ({ escalateAt: null, reAlarmAt: context.reAlarmMs !== null ? event.now + context.reAlarmMs : null })),
    backToNormal: assign(({ context }) => ({
      conditionActive: false,
      severity: context.baseSeverity,
      escalateAt: null,
      reAlarmAt: null,
      shelvedUntil: null,
      oneShot: false,
    })),
    leaveAcknowledged: assign({ conditionActive: false, reAlarmAt: null }),
    escalate: assign(({ context }) => {
      const severity = raise(context.severity);
      return {
        severity,
        escalateAt:
          severity === 'critical' || context.escalateAt === null || context.escalateAfterMs === null ? null : context.escalateAt + context.escalateAfterMs,
      };
    }),
    shelve: assign(({ context, event }) => ({
      severity: context.baseSeverity,
      escalateAt: null,
      reAlarmAt: null,
      shelvedUntil: 'durationMs' in event ? event.now + event.durationMs : null,
      oneShot: !('durationMs' in event),
    })),
    clearDeadlines: assign(({ context }) => ({ severity: context.baseSeverity, escalateAt: null, reAlarmAt: null, shelvedUntil: null, oneShot: false })),
  },
}).createMachine({
  id: 'alarm',
  initial: 'normal',
  context: ({ input }) => ({
    conditionActive: false,
    severity: input.severity,
    baseSeverity: input.severity,
    latch: input.latch ?? false,
    escalateAfterMs: input.escalateAfterMs ?? null,
    escalateAt: null,
    reAlarmMs: input.reAlarmMs ?? null,
    reAlarmAt: null,
    shelvedUntil: null,
    oneShot: false,
  }),
  states: {
    normal: {
      on: {
        CONDITION_ON: { target: 'unacknowledged', actions: 'raised' },
        ...removals,
      },
    },
    unacknowledged: {
      tags: ['active'],
      on: {
        ACK: { target: 'acknowledged', actions: 'acknowledged' },
        CONDITION_OFF: [
          { guard: 'latching', target: 'latched', actions: 'conditionOff' },
          { target: 'returnedUnack', actions: 'conditionOff' },
        ],
        TICK: { guard: 'escalationDue', target: 'unacknowledged', actions: 'escalate' },
        ...removals,
      },
    },
    acknowledged: {
      tags: ['active'],
      on: {
        CONDITION_OFF: [
          { guard: 'latching', target: 'latched', actions: 'leaveAcknowledged' },
          { target: 'normal', actions: 'backToNormal' },
        ],
        // Re-alarm: acknowledged long ago and still there, so it is announced again.
        TICK: { guard: 'reAlarmDue', target: 'unacknowledged', actions: 'raised' },
        ...removals,
      },
    },
    returnedUnack: {
      tags: ['active'],
      on: {
        ACK: { target: 'normal', actions: 'backToNormal' },
        // Re-alarm: the condition came back before anyone acknowledged it.
        CONDITION_ON: { target: 'unacknowledged', actions: 'conditionOn' },
        TICK: { guard: 'escalationDue', target: 'returnedUnack', actions: 'escalate' },
        ...removals,
      },
    },
    latched: {
      // The condition has cleared but a person must reset the alarm; a reset is also its acknowledgement.
      tags: ['active'],
      on: {
        RESET: { target: 'normal', actions: 'backToNormal' },
        CONDITION_ON: { target: 'unacknowledged', actions: 'raised' },
        ...removals,
      },
    },
    shelved: {
      on: {
        UNSHELVE: recheck,
        CONDITION_ON: { target: 'shelved', actions: 'conditionOn' },
        CONDITION_OFF: [
          { guard: 'oneShot', target: 'normal', actions: 'backToNormal' },
          { target: 'shelved', actions: 'conditionOff' },
        ],
        TICK: [
          { guard: 'shelveExpiredActive', target: 'unacknowledged', actions: 'raised' },
          { guard: 'shelveExpired', target: 'normal', actions: 'backToNormal' },
        ],
        OUT_OF_SERVICE: removals.OUT_OF_SERVICE,
      },
    },
    suppressed: {
      on: {
        UNSUPPRESS: recheck,
        CONDITION_ON: { target: 'suppressed', actions: 'conditionOn' },
        CONDITION_OFF: { target: 'suppressed', actions: 'conditionOff' },
        OUT_OF_SERVICE: removals.OUT_OF_SERVICE,
      },
    },
    outOfService: {
      on: {
        IN_SERVICE: recheck,
        CONDITION_ON: { target: 'outOfService', actions: 'conditionOn' },
        CONDITION_OFF: { target: 'outOfService', actions: 'conditionOff' },
      },
    },
  },
});

export const ALARM_STATES = Object.keys(alarmMachine.root.states) as AlarmState[];

/** state → event → the target states it may lead to, read off the machine definition. */
export type AlarmTransitionTable = Record<string, Record<string, string[]>>;

export function alarmTransitions(): AlarmTransitionTable {
  const out: AlarmTransitionTable = {};
  for (const [name, node] of Object.entries(alarmMachine.root.states)) {
    const byEvent: Record<string, string[]> = {};
    for (const [eventType, list] of node.transitions) {
      const targets = new Set<string>();
      for (const t of list) for (const target of t.target ?? []) targets.add(target.key);
      byEvent[eventType] = [...targets];
    }
    out[name] = byEvent;
  }
  return out;
}

/** The states in which an alarm stands in `alarm:active` (tagged `active` in the machine). */
export function activeAlarmStates(): AlarmState[] {
  return Object.entries(alarmMachine.root.states)
    .filter(([, node]) => node.tags.includes('active'))
    .map(([name]) => name as AlarmState);
}

export const ALARM_INITIAL_STATE = alarmMachine.root.initial.target[0]!.key as AlarmState;

/** A committed alarm as stored: its state and context (the `alarm:{id}` hash holds both). */
export interface AlarmSnapshotData {
  readonly state: AlarmState;
  readonly context: AlarmContext;
}

export function initialAlarm(input: AlarmInput): AlarmSnapshotData {
  const [snap] = initialTransition(alarmMachine, input);
  return { state: snap.value as AlarmState, context: snap.context };
}

/**
 * The pure step the actor commits: the next state and context, or undefined when
 * the machine does not take the event (nothing to commit). A TICK with nothing due
 * and a self-transition that changes nothing are both undefined.
 *
 * Two shortcuts keep XState off the common no-op, both read off the machine, never
 * a second copy of it: an event that the state has no transition for (the table
 * Lua checks), and a TICK before every deadline in context (every TICK transition
 * is guarded by one of them being due). The step itself is read off the machine
 * too (`directStepOf`: its guards, targets and assigners, without building an XState
 * snapshot: ~15 kB of garbage a step, 333 steps a second at 10,000 alarms); where
 * that cannot answer, XState's own pure `transition()` on one inert actor scope made
 * once (XState's helper makes a new actor per call, and computes, and here fails, an
 * initial snapshot each time). `stepAlarmReference` is the plain XState step, for
 * the law that the two agree.
 */
export function stepAlarm(from: AlarmSnapshotData, event: AlarmEvent): AlarmSnapshotData | undefined {
  if (TRANSITIONS[from.state]?.[event.type] === undefined) return undefined;
  if (event.type === 'TICK' && !deadlineDue(from.context, event.now)) return undefined;
  const direct = directStep(from.state, from.context, event);
  if (direct) return changed(from, direct.state as AlarmState, direct.context);
  const next = inertStep(alarmMachine.resolveState({ value: from.state, context: from.context }), event);
  return changed(from, next.value as AlarmState, next.context);
}

/** The same step through XState's `transition()` alone: what `stepAlarm` must always agree with. */
export function stepAlarmReference(from: AlarmSnapshotData, event: AlarmEvent): AlarmSnapshotData | undefined {
  const [next] = transition(alarmMachine, alarmMachine.resolveState({ value: from.state, context: from.context }), event);
  return changed(from, next.value as AlarmState, next.context);
}

function changed(from: AlarmSnapshotData, state: AlarmState, context: AlarmContext): AlarmSnapshotData | undefined {
  return state === from.state && sameContext(context, from.context) ? undefined : { state, context };
}

const TRANSITIONS = alarmTransitions();

/** Whether a TICK at `now` can fire anything: one of the context's deadlines has come. */
function deadlineDue(c: AlarmContext, now: number): boolean {
  return (c.escalateAt !== null && c.escalateAt <= now) || (c.reAlarmAt !== null && c.reAlarmAt <= now) || (c.shelvedUntil !== null && c.shelvedUntil <= now);
}

/** XState's own step on one inert scope (machines/quietStep.ts; the alarm machine only assigns). */
const inertStep = inertStepOf(alarmMachine, { severity: 'minor' });
/** The step read off the machine's definition (machines/quietStep.ts). */
const directStep = directStepOf<AlarmContext, AlarmEvent>(alarmMachine);

function sameContext(a: AlarmContext, b: AlarmContext): boolean {
  return (Object.keys(a) as (keyof AlarmContext)[]).every((k) => a[k] === b[k]);
}

/**
 * What a committed step means, for the `why` of an automatic transition in
 * `alarm:events` (an operator's own comment takes its place for operator actions).
 */
export function stepReason(from: AlarmSnapshotData, to: AlarmSnapshotData, event: AlarmEvent): string {
  if (event.type === 'TICK') {
    if (from.state === 'shelved') return 'shelve expired';
    if (from.state === 'acknowledged') return 're-alarm';
    return `escalated to ${to.context.severity}`;
  }
  if (event.type === 'CONDITION_ON')
    return from.state === 'normal' || from.state === 'latched' ? 'raised' : from.state === 'returnedUnack' ? 're-alarm' : 'condition active';
  if (event.type === 'CONDITION_OFF') return from.state === 'shelved' && to.state === 'normal' ? 'one-shot shelve ended' : 'condition cleared';
  return event.type.toLowerCase().replace(/_/g, ' ');
}
