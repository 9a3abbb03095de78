/**
 * The life of one rule: idle → holding (the condition must hold `forMs`) →
 * active (the `then` actions ran) → cooldown (until `cooldownMs` after it
 * fired; the `else` actions ran when the condition stopped holding) → idle.
 * A release once the cooldown has passed goes from active to idle directly.
 * `disabled` is left only by ENABLE.
 *
 * Pure: no I/O, no clock, no XState `after` (timers are not restored from a
 * persisted snapshot). Deadlines are absolute ms in context; every event
 * carries its time, and a TICK{now} from the actor fires what is due. The
 * effect of a step (which actions to run) is `context.effect`, read by the
 * actor after the step and committed with it, so that a restart neither fires
 * again nor forgets a running `for`.
 *
 * An input that is not good BLOCKs the rule: a running `for` is interrupted
 * (the condition was not seen to hold), an active rule stays active (nothing
 * is undone on a value it cannot read), and the reason is kept until the next
 * CONDITION. A blocked rule never fires.
 */
import { assign, initialTransition, setup, transition } from 'xstate';
import { directStepOf, inertStepOf, quietStepOf } from './quietStep.js';

export type RuleState = 'idle' | 'holding' | 'active' | 'cooldown' | 'disabled';
export const RULE_STATES: readonly RuleState[] = ['idle', 'holding', 'active', 'cooldown', 'disabled'];

export type RuleEvent =
  | { readonly type: 'CONDITION'; readonly value: boolean; readonly now: number }
  | { readonly type: 'BLOCK'; readonly reason: string; readonly now: number }
  | { readonly type: 'TICK'; readonly now: number }
  | { readonly type: 'ENABLE'; readonly now: number }
  | { readonly type: 'DISABLE'; readonly now: number };

export interface RuleInput {
  readonly forMs: number;
  readonly cooldownMs: number;
}

export type RuleEffect = 'then' | 'else' | null;

export interface RuleContext {
  readonly forMs: number;
  readonly cooldownMs: number;
  /** The last condition seen (null: none yet, or blocked since). */
  readonly condition: boolean | null;
  /** Absolute ms at which a running `for` completes; null when not holding. */
  readonly holdUntil: number | null;
  /** Absolute ms before which the rule does not fire again; null: none. */
  readonly cooldownUntil: number | null;
  readonly firedAt: number | null;
  /** Why the rule is blocked (an input that is not good); null: not blocked. */
  readonly blocked: string | null;
  /** What the last step asks the actor to run. */
  readonly effect: RuleEffect;
  readonly fires: number;
}

type Ev<T extends RuleEvent['type']> = Extract<RuleEvent, { type: T }>;

const cleared = { effect: null } as const;

export const ruleMachine = setup({
  types: {} as { context: RuleContext; events: RuleEvent; input: RuleInput },
  guards: {
    holdsNow: ({ context, event }) => event.type === 'CONDITION' && event.value && context.forMs === 0,
    conditionTrue: ({ event }) => event.type === 'CONDITION' && event.value,
    conditionFalse: ({ event }) => event.type === 'CONDITION' && !event.value,
    holdDone: ({ context, event }) =>
      'now' in event && context.holdUntil !== null && event.now >= context.holdUntil && (event.type !== 'CONDITION' || event.value),
    cooldownOver: ({ context, event }) => context.cooldownUntil === null || event.now >= context.cooldownUntil,
    falseAfterCooldown: ({ context, event }) =>
      event.type === 'CONDITION' && !event.value && (context.cooldownUntil === null || event.now >= context.cooldownUntil),
    cooldownOverHeld: ({ context, event }) => context.condition === true && context.cooldownUntil !== null && event.now >= context.cooldownUntil,
    cooldownOverHeldNoFor: ({ context, event }) =>
      context.condition === true && context.forMs === 0 && context.cooldownUntil !== null && event.now >= context.cooldownUntil,
    cooldownOverAndHoldsNow: ({ context, event }) =>
      event.type === 'CONDITION' && event.value && context.forMs === 0 && (context.cooldownUntil === null || event.now >= context.cooldownUntil),
    cooldownOverAndTrue: ({ context, event }) =>
      event.type === 'CONDITION' && event.value && (context.cooldownUntil === null || event.now >= context.cooldownUntil),
  },
  actions: {
    clearEffect: assign(cleared),
    seen: assign(({ event }) => ({ condition: (event as Ev<'CONDITION'>).value, blocked: null })),
    startHold: assign(({ context, event }) => ({ holdUntil: event.now + context.forMs })),
    fire: assign(({ context, event }) => ({
      effect: 'then' as const,
      holdUntil: null,
      firedAt: event.now,
      cooldownUntil: event.now + context.cooldownMs,
      fires: context.fires + 1,
    })),
    release: assign({ effect: 'else' as const }),
    interrupt: assign(({ event }) => ({ holdUntil: null, condition: null, blocked: (event as Ev<'BLOCK'>).reason })),
    block: assign(({ event }) => ({ condition: null, blocked: (event as Ev<'BLOCK'>).reason })),
    reset: assign({ holdUntil: null, condition: null, blocked: null }),
  },
}).createMachine({
  id: 'rule',
  initial: 'idle',
  context: ({ input }) => ({
    forMs: input.forMs,
    cooldownMs: input.cooldownMs,
    condition: null,
    holdUntil: null,
    cooldownUntil: null,
    firedAt: null,
    blocked: null,
    effect: null,
    fires: 0,
  }),
  on: {
    DISABLE: { target: '.disabled', actions: ['clearEffect', 'reset'] },
    BLOCK: { actions: ['clearEffect', 'block'] },
  },
  states: {
    idle: {
      on: {
        CONDITION: [
          { guard: 'holdsNow', target: 'active', actions: ['clearEffect', 'seen', 'fire'] },
          { guard: 'conditionTrue', target: 'holding', actions: ['clearEffect', 'seen', 'startHold'] },
          { actions: ['clearEffect', 'seen'] },
        ],
      },
    },
    holding: {
      on: {
        CONDITION: [
          { guard: 'holdDone', target: 'active', actions: ['clearEffect', 'seen', 'fire'] },
          { guard: 'conditionFalse', target: 'idle', actions: ['clearEffect', 'seen', 'reset'] },
          { actions: ['clearEffect', 'seen'] },
        ],
        TICK: { guard: 'holdDone', target: 'active', actions: ['clearEffect', 'fire'] },
        BLOCK: { target: 'idle', actions: ['clearEffect', 'interrupt'] },
      },
    },
    active: {
      on: {
        CONDITION: [
          // A release after the cooldown has passed (it runs from the fire: no cooldown, or a condition that held
          // longer) returns to idle at once, as the cooldown's deadline would the same instant: one step, not two.
          { guard: 'falseAfterCooldown', target: 'idle', actions: ['clearEffect', 'seen', 'release'] },
          { guard: 'conditionFalse', target: 'cooldown', actions: ['clearEffect', 'seen', 'release'] },
          { actions: ['clearEffect', 'seen'] },
        ],
      },
    },
    cooldown: {
      on: {
        CONDITION: [
          { guard: 'cooldownOverAndHoldsNow', target: 'active', actions: ['clearEffect', 'seen', 'fire'] },
          { guard: 'cooldownOverAndTrue', target: 'holding', actions: ['clearEffect', 'seen', 'startHold'] },
          { guard: 'cooldownOver', target: 'idle', actions: ['clearEffect', 'seen'] },
          { actions: ['clearEffect', 'seen'] },
        ],
        TICK: [
          // The condition held through the cooldown: the `for` starts now (or it fires, with no `for`).
          { guard: 'cooldownOverHeldNoFor', target: 'active', actions: ['clearEffect', 'fire'] },
          { guard: 'cooldownOverHeld', target: 'holding', actions: ['clearEffect', 'startHold'] },
          { guard: 'cooldownOver', target: 'idle', actions: 'clearEffect' },
        ],
      },
    },
    disabled: {
      on: {
        ENABLE: { target: 'idle', actions: ['clearEffect', 'reset'] },
        DISABLE: { actions: 'clearEffect' },
        BLOCK: { actions: 'clearEffect' },
      },
    },
  },
});

/** A rule as stored in `rule:{id}`: its state and context. */
export interface RuleSnapshotData {
  readonly state: RuleState;
  readonly context: RuleContext;
}

export function initialRule(input: RuleInput): RuleSnapshotData {
  const [snap] = initialTransition(ruleMachine, input);
  return { state: snap.value as RuleState, context: snap.context };
}

/** Whether an event changes nothing, read off the machine's transitions, guards and assigners (no snapshot built). */
const quiet = quietStepOf<RuleContext, RuleEvent>(ruleMachine);
/** Every other step, read off the machine's definition (its guards, targets and assigners, no snapshot built)... */
const directStep = directStepOf<RuleContext, RuleEvent>(ruleMachine);
/** ...or, where that cannot answer, XState's own transition on one inert scope (the rule machine only assigns). */
const inertStep = inertStepOf(ruleMachine, { forMs: 0, cooldownMs: 0 });

/**
 * The pure step the actor commits: the next state and context, or undefined
 * when nothing changed (a TICK with nothing due, the same condition again).
 * The common case, the condition seen again, is answered by `quiet` (the
 * machine's own guards and assigners) without XState's transition(); every
 * other event by `directStep` (the same, with targets), and what that cannot
 * answer goes through transition(). `transitionRule` is the latter alone.
 */
export function stepRule(from: RuleSnapshotData, event: RuleEvent): RuleSnapshotData | undefined {
  const context = from.context.effect === null ? from.context : { ...from.context, effect: null };
  if (quiet(from.state, context, event)) return undefined;
  const direct = directStep(from.state, context, event);
  if (direct) return changed(from.state, context, { value: direct.state, context: direct.context });
  return changed(from.state, context, inertStep(ruleMachine.resolveState({ value: from.state, context }), event));
}

/** stepRule through XState's transition() only (the reference the quiet and inert paths are tested against). */
export function transitionRule(from: RuleSnapshotData, event: RuleEvent): RuleSnapshotData | undefined {
  const context = { ...from.context, effect: null };
  const [next] = transition(ruleMachine, ruleMachine.resolveState({ value: from.state, context }), event);
  return changed(from.state, context, next);
}

function changed(state: RuleState, context: RuleContext, next: { readonly value: unknown; readonly context: RuleContext }): RuleSnapshotData | undefined {
  const to = { state: next.value as RuleState, context: next.context };
  return to.state === state && sameContext(to.context, context) ? undefined : to;
}

function sameContext(a: RuleContext, b: RuleContext): boolean {
  return (Object.keys(a) as (keyof RuleContext)[]).every((k) => a[k] === b[k]);
}

/** The earliest deadline the actor must wake up for (a `for` completing, a cooldown ending), or null. */
export function nextDeadline(r: RuleSnapshotData): number | null {
  if (r.state === 'holding') return r.context.holdUntil;
  if (r.state === 'cooldown') return r.context.cooldownUntil;
  return null;
}
