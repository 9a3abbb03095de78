/**
 * Runs an XState machine as a supervised child: builds it with its
 * implementations (from actors/), starts it, reports its snapshots to the
 * registry, and turns status `error` into a failure and `done` into a normal
 * exit for the supervisor. Every subscription has an error callback (an
 * unhandled actor error would otherwise become an uncaught exception).
 */
import { createActor, type AnyActorRef, type AnyStateMachine, type InputFrom } from 'xstate';
import type { ActorRegistry } from './registry.js';
import type { ChildSpec, ExitReason, RestartType, RunningChild } from './supervisor.js';

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
  readonly shutdownMs?: number;
  readonly registry: ActorRegistry;
  /** What of the context goes into the registry (keep it small). */
  readonly summarize?: (context: Record<string, unknown>) => Record<string, unknown>;
  build(): Promise<BuiltActor<M>>;
}

export function machineChild<M extends AnyStateMachine>(opts: MachineChildOptions<M>): ChildSpec {
  return {
    id: opts.id,
    restart: opts.restart ?? 'permanent',
    shutdownMs: opts.shutdownMs ?? 5_000,
    type: 'worker',
    async start(): Promise<RunningChild> {
      const built = await opts.build();
      let disposed: Promise<void> | undefined;
      const dispose = () => (disposed ??= built.dispose().catch(() => undefined));
      let listener: ((r: ExitReason) => void) | undefined;
      let exited: ExitReason | undefined;
      let stopping = false;
      const exit = (r: ExitReason) => {
        if (exited || stopping) return;
        exited = r;
        void dispose().then(() => listener?.(r));
      };
      // The event the actor is processing, for its transitions journal.
      let event = '';
      const actor: AnyActorRef = createActor(built.machine, {
        input: built.input, id: opts.id,
        inspect: (ev) => { if (ev.type === '@xstate.event' && ev.actorRef === actor) event = ev.event.type; },
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
          if (exited) listener(exited);
        },
      };
    },
  };
}
