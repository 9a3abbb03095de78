/**
 * Whether an event changes nothing, answered from a machine's own definition
 * without XState's `transition()` (which resolves a snapshot and builds a new
 * one per call: ~20 µs, the bulk of a rule evaluation when the condition is the
 * one already seen).
 *
 * It reads, once per machine, each atomic state's candidate transitions per
 * event type (the state's own, then its ancestors', as XState selects them),
 * and per call runs the named guards of the machine's implementations in
 * order. The event changes nothing when no transition is enabled, or when the
 * first enabled one has no target and only `assign` actions whose every
 * assigned key already holds the value it would assign. Anything else
 * (a target, a re-entry, an inline guard or action, an action that is not an
 * `assign`) answers `undefined`: not known, ask XState. So it can only say
 * "unchanged" where XState would also leave the state and the context as they
 * are; test/unit/rule-machine.test.ts checks that against `transition()` on
 * random event sequences.
 *
 * Pure: no I/O, no clock. Meant for flat machines (atomic states under the
 * root) whose guards and assigners read only `context` and `event`.
 */
import { createActor, type AnyActorScope, type AnyStateMachine, type EventObject } from 'xstate';

interface Candidate {
  readonly guard: string | null;
  /** The transition leaves the state or re-enters it: not a quiet step. */
  readonly moves: boolean;
  readonly actions: readonly string[] | null;
  /**
   * For a direct step: the plain state it goes to (null: it stays, no target), or
   * undefined when it is not read here (an inline guard, a re-entry, a target with
   * entry or exit actions, an invocation, eventless transitions or children).
   */
  readonly target: string | null | undefined;
}

type Args<C, E> = { readonly context: C; readonly event: E };
type Guard<C, E> = (args: Args<C, E>, params: undefined) => boolean;
type Assigner<C, E> = (args: Args<C, E>, params: undefined) => Partial<C>;
type AssignAction = { readonly type: string; readonly assignment: unknown };

/** true: the event leaves the state and the context as they are; undefined: not known (ask XState). */
export type QuietStep<C extends object, E extends EventObject> = (state: string, context: C, event: E) => true | undefined;

function candidatesOf(machine: AnyStateMachine): Map<string, Map<string, Candidate[]>> {
  const out = new Map<string, Map<string, Candidate[]>>();
  // Wildcards and eventless transitions are not read here: such a machine has no quiet steps (everything goes to XState).
  const plain = (node: AnyStateMachine['root']) => node.always === undefined && [...node.transitions.keys()].every((k) => !k.includes('*'));
  if (!plain(machine.root)) return out;
  // A state that can be left or entered without anything but the move: no entry, exit, invocation or eventless transition.
  const bare = (node: AnyStateMachine['root']) =>
    node.type === 'atomic' && node.parent === machine.root && node.entry.length === 0 && node.exit.length === 0 && node.invoke.length === 0 && plain(node);
  for (const [name, node] of Object.entries(machine.root.states)) {
    if (node.type !== 'atomic' || !plain(node)) continue;
    const perEvent = new Map<string, Candidate[]>();
    // Innermost first: the state's own transitions, then the root's (XState falls through when none is enabled).
    for (const owner of [node, machine.root]) {
      for (const [type, list] of owner.transitions) {
        const into = perEvent.get(type) ?? [];
        for (const t of list) {
          const named = t.guard === undefined || typeof t.guard === 'string';
          const actions = t.actions.every((a) => typeof a === 'string') ? (t.actions as readonly string[]) : null;
          const to = t.target?.length === 1 ? t.target[0]! : undefined;
          const target = !named || t.reenter ? undefined : t.target === undefined ? null : to && bare(to) && bare(node) ? to.key : undefined;
          into.push({ guard: typeof t.guard === 'string' ? t.guard : null, moves: t.target !== undefined || t.reenter || !named, actions, target });
        }
        perEvent.set(type, into);
      }
    }
    out.set(name, perEvent);
  }
  return out;
}

/** The first candidate whose named guard holds, in XState's order; null: none is enabled; undefined: a guard not known here. */
function firstEnabled<C, E>(
  list: readonly Candidate[],
  guards: Readonly<Record<string, Guard<C, E> | undefined>>,
  args: Args<C, E>,
): Candidate | null | undefined {
  for (const t of list) {
    if (t.guard === null) return t;
    const g = guards[t.guard];
    if (!g) return undefined;
    if (g(args, undefined)) return t;
  }
  return null;
}

/** Builds the quiet-step check of a flat machine (read once; the check itself allocates only the assigners' results). */
export function quietStepOf<C extends object, E extends EventObject>(machine: AnyStateMachine): QuietStep<C, E> {
  const table = candidatesOf(machine);
  const guards = machine.implementations.guards as Readonly<Record<string, Guard<C, E> | undefined>>;
  const actions = machine.implementations.actions as Readonly<Record<string, AssignAction | undefined>>;

  /** The keys an action would assign, compared with the context: true when all already hold those values. */
  const assignsNothingNew = (name: string, args: Args<C, E>): boolean => {
    const a = actions[name];
    if (a?.type !== 'xstate.assign') return false;
    const assignment = a.assignment;
    const partial: Record<string, unknown> =
      typeof assignment === 'function' ? (assignment as Assigner<C, E>)(args, undefined) : (assignment as Record<string, unknown>);
    const context = args.context as Record<string, unknown>;
    for (const key in partial) {
      const v = partial[key];
      if (typeof v === 'function') return false; // a property assigner: not read here
      if (context[key] !== v) return false;
    }
    return true;
  };

  /** One arguments object for every call: the guards and assigners read it and keep nothing, and none calls back here. */
  let scratch: { context: C; event: E } | undefined;
  return (state, context, event) => {
    const list = table.get(state)?.get(event.type);
    if (!list) return table.has(state) ? true : undefined;
    const args = (scratch ??= { context, event });
    args.context = context;
    args.event = event;
    const t = firstEnabled(list, guards, args);
    if (t === null) return true;
    if (t === undefined || t.moves || t.actions === null) return undefined;
    for (const name of t.actions) if (!assignsNothingNew(name, args)) return undefined;
    return true;
  };
}

/** A direct step: the state and context after the event; undefined when it is not known here (ask XState). */
export type DirectStep<C extends object, E extends EventObject> = (
  state: string,
  context: C,
  event: E,
) => { readonly state: string; readonly context: C } | undefined;

/**
 * Builds the direct step of a flat machine: the first enabled transition (the
 * machine's named guards, in XState's order), its target when it is a plain
 * state (no entry, exit, invocation or eventless transition on either side, so
 * moving runs nothing but the transition's own actions), and its named `assign`
 * actions applied in order, each to the context the previous one left (as
 * XState's assign does: a shallow merge of what it returns, property assigners
 * called one by one). No transition enabled: the state and context as they are.
 * Anything else answers undefined. XState's transition() builds a snapshot,
 * its state-node sets and an actor scope per call (~10–15 kB of garbage); this
 * builds the new context only. Checked against transition() by the machines'
 * laws (test/unit/alarm-machine.test.ts, test/unit/rule-machine.test.ts).
 */
export function directStepOf<C extends object, E extends EventObject>(machine: AnyStateMachine): DirectStep<C, E> {
  const table = candidatesOf(machine);
  const guards = machine.implementations.guards as Readonly<Record<string, Guard<C, E> | undefined>>;
  const actions = machine.implementations.actions as Readonly<Record<string, AssignAction | undefined>>;

  /** An assign action applied to `context`; undefined when the action is not an assign. */
  const assigned = (name: string, context: C, event: E): C | undefined => {
    const a = actions[name];
    if (a?.type !== 'xstate.assign') return undefined;
    const args = { context, event };
    const assignment = a.assignment;
    if (typeof assignment === 'function') return { ...context, ...(assignment as Assigner<C, E>)(args, undefined) };
    const next = { ...context } as Record<string, unknown>;
    for (const [key, v] of Object.entries(assignment as Record<string, unknown>))
      next[key] = typeof v === 'function' ? (v as (a: Args<C, E>, p: undefined) => unknown)(args, undefined) : v;
    return next as C;
  };

  return (state, context, event) => {
    const perEvent = table.get(state);
    if (!perEvent) return undefined;
    const list = perEvent.get(event.type);
    if (!list) return { state, context };
    const t = firstEnabled(list, guards, { context, event });
    if (t === null) return { state, context };
    if (t === undefined || t.target === undefined || t.actions === null) return undefined;
    let next = context;
    for (const name of t.actions) {
      const c = assigned(name, next, event);
      if (!c) return undefined;
      next = c;
    }
    return { state: t.target ?? state, context: next };
  };
}

/**
 * A machine's pure step without XState's per-call actor: `transition()` makes a
 * new actor per call (and computes its initial snapshot from `input`), most of
 * the ~20 µs a step takes. For a machine whose actions are all `assign` (no
 * spawn, invoke, emit or delayed event), nothing is executed or registered
 * through the scope, so one scope made once serves every step; the law in
 * test/unit/rule-machine.test.ts checks that it agrees with `transition()`.
 */
export function inertStepOf<M extends AnyStateMachine>(
  machine: M,
  input: unknown,
): (snapshot: ReturnType<M['resolveState']>, event: EventObject) => ReturnType<M['resolveState']> {
  let scope: AnyActorScope | undefined;
  const inert = (): AnyActorScope => {
    if (scope) return scope;
    const self = createActor(machine as AnyStateMachine, { input });
    scope = {
      self,
      id: '',
      sessionId: '',
      system: self.system,
      logger: () => undefined,
      defer: () => undefined,
      emit: () => undefined,
      stopChild: () => undefined,
      actionExecutor: () => undefined,
    } as unknown as AnyActorScope;
    return scope;
  };
  return (snapshot, event) => machine.transition(snapshot, event, inert()) as ReturnType<M['resolveState']>;
}
