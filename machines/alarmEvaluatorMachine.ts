/**
 * The life of an alarm actor (actors/alarm/): load the alarms of its model and
 * the current values from Redis, then evaluate whenever a value update, a due
 * deadline (TICK) or an operator's commit arrives. Evaluations coalesce: what
 * arrives during one is taken by the next. A resync (the subscriber
 * reconnected: notifications may have been missed) loads again from Redis.
 * Pure: `load`, `evaluate` and the `applyUpdate` action are provided by the actor.
 * Each alarm's own life is machines/alarmMachine.ts, stepped purely by the actor.
 */
import { assign, fromPromise, setup } from 'xstate';

export interface AlarmEvaluatorInput {
  readonly model: string;
  readonly alarms: number;
}

export type AlarmEvaluatorEvent =
  | {
      /** A model update notification as published (the actor reads only the points its alarms read). */
      readonly type: 'alarms.update';
      readonly source: string;
      readonly message: string;
    }
  | { readonly type: 'alarms.tick' }
  | { readonly type: 'alarms.resync' };

export interface AlarmEvaluatorContext {
  readonly model: string;
  readonly alarms: number;
  readonly updates: number;
  readonly evaluations: number;
  /** Transitions committed by this actor. */
  readonly commits: number;
  readonly dirty: boolean;
}

export const alarmEvaluatorMachine = setup({
  types: { context: {} as AlarmEvaluatorContext, input: {} as AlarmEvaluatorInput, events: {} as AlarmEvaluatorEvent },
  actors: {
    load: fromPromise<void>(async () => {
      throw new Error('load is provided by the alarm actor');
    }),
    evaluate: fromPromise<number>(async () => {
      throw new Error('evaluate is provided by the alarm actor');
    }),
  },
  actions: {
    applyUpdate: (_, _params: { update: AlarmEvaluatorEvent }) => undefined,
  },
  guards: { isDirty: ({ context }) => context.dirty },
}).createMachine({
  id: 'alarm',
  context: ({ input }) => ({ model: input.model, alarms: input.alarms, updates: 0, evaluations: 0, commits: 0, dirty: true }),
  initial: 'loading',
  on: {
    'alarms.update': {
      actions: [{ type: 'applyUpdate', params: ({ event }) => ({ update: event }) }, assign({ updates: ({ context }) => context.updates + 1, dirty: true })],
    },
    'alarms.tick': { actions: assign({ dirty: true }) },
  },
  states: {
    loading: {
      invoke: { src: 'load', onDone: 'ready' },
      // A failed load fails the actor: its supervisor restarts it with backoff.
    },
    ready: {
      initial: 'evaluating',
      on: { 'alarms.resync': { target: 'loading', actions: assign({ dirty: true }) } },
      states: {
        idle: { always: { guard: 'isDirty', target: 'evaluating' } },
        evaluating: {
          entry: assign({ dirty: false }),
          invoke: {
            src: 'evaluate',
            onDone: {
              target: 'idle',
              actions: assign({ evaluations: ({ context }) => context.evaluations + 1, commits: ({ context, event }) => context.commits + event.output }),
            },
          },
        },
      },
    },
  },
});
