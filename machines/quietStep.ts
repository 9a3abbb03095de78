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
          into.push({ guard: typeof t.guard === 'string' ? t.guard : null, moves: t.target !== undefined || t.reenter || !named, actions });
        }
        perEvent.set(type, into);
      }
    }
    out.set(name, perEvent);
  }
  return out;
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

  return (state, context, event) => {
    const list = table.get(state)?.get(event.type);
    if (!list) return table.has(state) ? true : undefined;
    const args = { context, event };
    for (const t of list) {
      if (t.guard !== null) {
        const g = guards[t.guard];
        if (!g) return undefined;
        if (!g(args, undefined)) continue;
      }
      if (t.moves || t.actions === null) return undefined;
      for (const name of t.actions) if (!assignsNothingNew(name, args)) return undefined;
      return true;
    }
    return true;
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
