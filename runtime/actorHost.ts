/**
 * Runs an XState machine as a supervised child: builds it with its
 * implementations (from actors/), starts it, reports its snapshots to the
 * registry, and turns status `error` into a failure and `done` into a normal
 * exit for the supervisor. Every subscription has an error callback (an
 * unhandled actor error would otherwise become an uncaught exception).
 *
 * Each actor runs inside an AsyncLocalStorage scope, so that an unhandled
 * rejection or uncaught exception that arises in its work (its build, its
 * machine's invoked actors, the sockets it opened) is attributed to it and
 * fails it (`failCurrentActor`, called by the process's fault handlers in
 * runtime/reporter.ts) instead of crashing the process or passing unseen.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { createActor, type AnyActorRef, type AnyStateMachine, type InputFrom } from 'xstate';
import { DEFAULT_WORKER_SHUTDOWN_MS, type ChildSpec, type ExitReason, type RestartType, type RunningChild, type Shutdown } from './childSpec.js';
import type { ActorRegistry } from './registry.js';
import { settled } from './reporter.js';

interface ActorScope {
  readonly id: string;
  fail(error: unknown): void;
}

const actorScope = new AsyncLocalStorage<ActorScope>();

/** Fails the actor whose work is running now; returns its id, or undefined outside any actor. */
export function failCurrentActor(error: unknown): string | undefined {
  const scope = actorScope.getStore();
  if (!scope) return undefined;
  scope.fail(error);
  return scope.id;
}

export interface BuiltActor<M extends AnyStateMachine> {
  readonly machine: M;
  readonly input: InputFrom<M>;
  /** Called once the actor runs (to wire notifications to it). */
  attach?(actor: AnyActorRef): Promise<void> | void;
  /** Releases what `build` opened. Called exactly once, on stop or failure. */
  dispose(): Promise<void>;
}

export interface MachineChildOptions<M extends AnyStateMachine> {
  readonly id: string;
  readonly restart?: RestartType;
  /** Default: DEFAULT_WORKER_SHUTDOWN_MS. */
  readonly shutdown?: Shutdown;
  readonly registry: ActorRegistry;
  /** What of the context goes into the registry (keep it small). */
  readonly summarize?: (context: Record<string, unknown>) => Record<string, unknown>;
  build(): Promise<BuiltActor<M>>;
}

export function machineChild<M extends AnyStateMachine>(opts: MachineChildOptions<M>): ChildSpec {
  return {
    id: opts.id,
    restart: opts.restart ?? 'permanent',
    shutdown: opts.shutdown ?? DEFAULT_WORKER_SHUTDOWN_MS,
    type: 'worker',
    start(): Promise<RunningChild> {
      const scope: ActorScope = { id: opts.id, fail: () => undefined };
      return actorScope.run(scope, () => startMachine(opts, scope));
    },
  };
}

async function startMachine<M extends AnyStateMachine>(opts: MachineChildOptions<M>, scope: ActorScope): Promise<RunningChild> {
  // A fault while it builds fails the start.
  let startFault: { error: unknown } | undefined;
  scope.fail = (error) => {
    startFault ??= { error };
  };
  const built = await opts.build();
  let disposed: Promise<void> | undefined;
  const dispose = () => (disposed ??= settled(built.dispose(), { source: 'dispose', actor: opts.id }).then(() => undefined));
  let listener: ((r: ExitReason) => void) | undefined;
  let exited: ExitReason | undefined;
  let stopping = false;
  const exit = (r: ExitReason) => {
    if (exited || stopping) return;
    exited = r;
    // The supervisor reacts outside this actor's scope: its own faults are not this actor's.
    void dispose().then(() => actorScope.exit(() => listener?.(r)));
  };
  const buildFault = startFault;
  if (buildFault) {
    await dispose();
    throw buildFault.error;
  }
  // The event the actor is processing, for its transitions journal.
  let event = '';
  const actor: AnyActorRef = createActor(built.machine, {
    input: built.input,
    id: opts.id,
    inspect: (ev) => {
      if (ev.type === '@xstate.event' && ev.actorRef === actor) event = ev.event.type;
    },
  });
  actor.subscribe({
    next: (snap) => {
      const s = snap as { value: unknown; context: unknown };
      const ctx = (s.context ?? {}) as Record<string, unknown>;
      opts.registry.snapshot(opts.id, s.value, () => (opts.summarize ? opts.summarize(ctx) : ctx), event);
    },
    error: (err) => exit({ kind: 'error', error: err }),
    complete: () => {
      if ((actor.getSnapshot() as { status: string }).status === 'done') exit({ kind: 'normal' });
    },
  });
  scope.fail = (error) => exit({ kind: 'error', error });
  actor.start();
  try {
    await built.attach?.(actor);
  } catch (e) {
    actor.stop();
    await dispose();
    throw e;
  }
  return {
    async stop() {
      stopping = true;
      actor.stop();
      await dispose();
    },
    onExit(l) {
      listener = l;
      if (exited) actorScope.exit(() => l(exited as ExitReason));
    },
  };
}
