/**
 * The life of one model: load its current inputs, then recalculate whenever
 * an update arrives. Updates that arrive while a calculation is being
 * committed are coalesced into the next one, so a burst costs one commit,
 * not one per update. Pure: `load`, `calculate`, the `applyUpdate` action and
 * the `retryDelay` are provided by actors/model.
 */
import { assign, fromPromise, setup } from 'xstate';
import { errorText, isTransientError } from './errors.js';

export interface ModelInput {
  readonly modelId: string;
}

export interface ModelUpdate {
  readonly type: 'model.update';
  /** The model whose values changed (this one or one it depends on). */
  readonly source: string;
  readonly ts: number;
  readonly values: Readonly<Record<string, number>>;
  readonly quality: Readonly<Record<string, string>> | undefined;
  /** `calc` when the update carries calculated values. */
  readonly origin: 'c2m' | 'calc';
}

export interface ModelContext {
  readonly modelId: string;
  readonly updates: number;
  readonly calculations: number;
  readonly dirty: boolean;
  readonly errors: number;
  readonly lastError: string | null;
}

export const modelMachine = setup({
  types: {
    context: {} as ModelContext,
    input: {} as ModelInput,
    events: {} as ModelUpdate,
  },
  actors: {
    load: fromPromise<void, { modelId: string }>(async () => {
      throw new Error('load is provided by the model actor');
    }),
    calculate: fromPromise<number, { modelId: string }>(async () => {
      throw new Error('calculate is provided by the model actor');
    }),
  },
  actions: {
    applyUpdate: (_, _params: { update: ModelUpdate }) => undefined,
  },
  guards: {
    isDirty: ({ context }) => context.dirty,
    isTransient: ({ event }) => isTransientError(event),
  },
  delays: { retryDelay: 1_000 },
}).createMachine({
  id: 'model',
  context: ({ input }) => ({ modelId: input.modelId, updates: 0, calculations: 0, dirty: true, errors: 0, lastError: null }),
  initial: 'loading',
  states: {
    loading: {
      on: { 'model.update': { actions: [{ type: 'applyUpdate', params: ({ event }) => ({ update: event }) }] } },
      invoke: { src: 'load', input: ({ context }) => ({ modelId: context.modelId }), onDone: 'ready' },
    },
    ready: {
      initial: 'calculating',
      on: {
        'model.update': {
          actions: [
            { type: 'applyUpdate', params: ({ event }) => ({ update: event }) },
            assign({ updates: ({ context }) => context.updates + 1, dirty: true }),
          ],
        },
      },
      states: {
        idle: {
          always: { guard: 'isDirty', target: 'calculating' },
        },
        calculating: {
          entry: assign({ dirty: false }),
          invoke: {
            src: 'calculate',
            input: ({ context }) => ({ modelId: context.modelId }),
            onDone: { target: 'idle', actions: assign({ calculations: ({ context }) => context.calculations + 1 }) },
            onError: {
              guard: 'isTransient',
              target: 'retrying',
              actions: assign({ errors: ({ context }) => context.errors + 1, dirty: true, lastError: ({ event }) => errorText(event) }),
            },
          },
        },
        retrying: {
          after: { retryDelay: 'idle' },
        },
      },
    },
  },
});
