/**
 * The life of one history writer (one per configured backend):
 *
 *   connecting ──ok──> rewriting? ──> draining ⇄ writing
 *        ^                 ^              │         │
 *        │                 └── restarted ─┴─────────┤
 *        └──────── backoff <── database or Redis unreachable
 *
 * - connecting: the consumer group exists and the database answers.
 * - rewriting: after a failure, or when a batch reports that the database
 *   restarted between two batches (`restarted`). The database may have lost
 *   what it acknowledged in its last seconds (VictoriaMetrics 1.79 loses ~5 s
 *   when killed), so the writer's recent window is written again; the
 *   database's deduplication makes the repeat harmless.
 * - draining: catching up with a backlog (full batches, paced at the configured
 *   rate) until a batch comes back short.
 * - writing: live, batched by size and time; a full batch means a backlog again.
 * - backoff: waits `retryDelay` (growing with `attempts`); the backlog stays
 *   in the stream meanwhile, unacknowledged. On entry, `prepareBacklog`: the
 *   writer may read and encode the backlog ahead while the database is down
 *   (held unacknowledged, sent first once it answers), so that the drain
 *   after it costs little more than the requests.
 *
 * Pure: `connect`, `rewriteWindow`, `writeBatch`, `prepareBacklog` and the
 * `retryDelay` are provided by actors/history/HistoryWriter. An error that is not transient
 * (a bug, not an outage) is left unhandled: the actor fails and its
 * supervisor decides.
 */
import { assign, fromPromise, setup } from 'xstate';
import { errorText, isTransientError } from './errors.js';

export interface HistoryInput {
  readonly backend: string;
}

/** What one batch did. `full`: it hit its size limit, so more is waiting. */
export interface BatchResult {
  readonly entries: number;
  readonly samples: number;
  /** Entries that were not in the outbox format: logged, counted and acknowledged. */
  readonly skipped: number;
  readonly full: boolean;
  /**
   * The database restarted since it accepted the recent window, with no write failing (seen beside the writes): the
   * batches out were settled, and the window is written again before the next batch.
   */
  readonly restarted?: boolean;
}

export type BatchMode = 'live' | 'drain';

export interface HistoryContext {
  readonly backend: string;
  /** Failed attempts since the last success (drives the backoff). */
  readonly attempts: number;
  readonly batches: number;
  readonly entries: number;
  readonly samples: number;
  readonly skipped: number;
  readonly failures: number;
  readonly rewrites: number;
  readonly needsRewrite: boolean;
  readonly lastError: string | null;
}

export const historyMachine = setup({
  types: {
    context: {} as HistoryContext,
    input: {} as HistoryInput,
  },
  actors: {
    connect: fromPromise<void, { backend: string }>(async () => {
      throw new Error('connect is provided by the history writer');
    }),
    rewriteWindow: fromPromise<number, { backend: string }>(async () => {
      throw new Error('rewriteWindow is provided by the history writer');
    }),
    writeBatch: fromPromise<BatchResult, { mode: BatchMode }>(async () => {
      throw new Error('writeBatch is provided by the history writer');
    }),
  },
  actions: {
    prepareBacklog: () => {},
    countBatch: assign(({ context }, params: { result: BatchResult }) => ({
      attempts: 0,
      batches: context.batches + (params.result.entries > 0 ? 1 : 0),
      entries: context.entries + params.result.entries,
      samples: context.samples + params.result.samples,
      skipped: context.skipped + params.result.skipped,
    })),
  },
  guards: {
    isTransient: ({ event }) => isTransientError(event),
    needsRewrite: ({ context }) => context.needsRewrite,
    batchFull: ({ event }) => (event as { output?: BatchResult }).output?.full === true,
    dbRestarted: ({ event }) => (event as { output?: BatchResult }).output?.restarted === true,
  },
  delays: { retryDelay: 1_000 },
}).createMachine({
  id: 'history',
  context: ({ input }) => ({
    backend: input.backend,
    attempts: 0,
    batches: 0,
    entries: 0,
    samples: 0,
    skipped: 0,
    failures: 0,
    rewrites: 0,
    needsRewrite: false,
    lastError: null,
  }),
  initial: 'connecting',
  states: {
    connecting: {
      invoke: {
        src: 'connect',
        input: ({ context }) => ({ backend: context.backend }),
        onDone: [{ guard: 'needsRewrite', target: 'rewriting' }, { target: 'draining' }],
        onError: { guard: 'isTransient', target: 'backoff' },
      },
    },
    rewriting: {
      invoke: {
        src: 'rewriteWindow',
        input: ({ context }) => ({ backend: context.backend }),
        onDone: { target: 'draining', actions: assign({ needsRewrite: false, rewrites: ({ context }) => context.rewrites + 1 }) },
        onError: { guard: 'isTransient', target: 'backoff' },
      },
    },
    draining: {
      invoke: {
        src: 'writeBatch',
        input: { mode: 'drain' as const },
        onDone: [
          { guard: 'dbRestarted', target: 'rewriting', actions: { type: 'countBatch', params: ({ event }) => ({ result: event.output }) } },
          { guard: 'batchFull', target: 'draining', reenter: true, actions: { type: 'countBatch', params: ({ event }) => ({ result: event.output }) } },
          { target: 'writing', actions: { type: 'countBatch', params: ({ event }) => ({ result: event.output }) } },
        ],
        onError: { guard: 'isTransient', target: 'backoff' },
      },
    },
    writing: {
      invoke: {
        src: 'writeBatch',
        input: { mode: 'live' as const },
        onDone: [
          { guard: 'dbRestarted', target: 'rewriting', actions: { type: 'countBatch', params: ({ event }) => ({ result: event.output }) } },
          { guard: 'batchFull', target: 'draining', actions: { type: 'countBatch', params: ({ event }) => ({ result: event.output }) } },
          { target: 'writing', reenter: true, actions: { type: 'countBatch', params: ({ event }) => ({ result: event.output }) } },
        ],
        onError: { guard: 'isTransient', target: 'backoff' },
      },
    },
    backoff: {
      entry: [
        assign({
          attempts: ({ context }) => context.attempts + 1,
          failures: ({ context }) => context.failures + 1,
          needsRewrite: true,
          lastError: ({ event }) => errorText(event),
        }),
        'prepareBacklog',
      ],
      after: { retryDelay: 'connecting' },
    },
  },
});
