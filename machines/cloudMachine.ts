/**
 * The life of one cloud link (one per configured link):
 *
 *   disconnected ──retryDelay──> connecting ──ok──> online
 *        ^                            │               │
 *        └──── attempts + 1 <── failed           lost (broker gone, refused)
 *
 * - disconnected: waits `retryDelay`, which grows with `attempts` (0 on the
 *   first start, so the first attempt is at once). The backlog stays in the
 *   outbox meanwhile, unacknowledged, bounded per link by the uplink.
 * - connecting: the broker accepted the connection, the birth message is
 *   published, the consumer group exists.
 * - online: `uplink` runs until the connection is lost. It reports its
 *   counters (PROGRESS) and the loss (LOST); it never throws (a fromCallback
 *   that throws leaks its resources), it reports instead.
 *
 * Pure: `connect`, `uplink` and `retryDelay` are provided by actors/cloud.
 * An error that is not transient (a bug, not an outage) fails the actor and
 * its supervisor decides.
 */
import { assign, fromCallback, fromPromise, setup } from 'xstate';
import { errorText, isTransientError } from './errors.js';

export interface CloudInput {
  readonly link: string;
}

/** The uplink's counters since the actor started (the link's seq is its own, persisted in Redis). */
export interface UplinkStats {
  /** Messages PUBACKed by the broker. */
  readonly published: number;
  /** Outbox entries acknowledged after every message built from them was PUBACKed. */
  readonly entries: number;
  /** Messages sent again after a reconnect (the subscriber may see them twice). */
  readonly resent: number;
  /** Messages the broker refused (MQTT 5 reason code ≥ 0x80: parked, not retried) and batches an HTTP cloud refused (a status that is not 2xx: retried). */
  readonly refused: number;
  /** The last message the broker refused: its reason code and topic. */
  readonly lastRefusal: string | null;
  /** Entries this link dropped unsent because its backlog passed maxBacklogMB. */
  readonly dropped: number;
  /** Entries a refuse-new link did not take because its backlog was past maxBacklogMB. */
  readonly notTaken: number;
  /** Outbox entries this link has not acknowledged yet (unread + in flight). */
  readonly lag: number;
  /** The last seq PUBACKed. */
  readonly seq: number;
}

export const EMPTY_STATS: UplinkStats = { published: 0, entries: 0, resent: 0, refused: 0, lastRefusal: null, dropped: 0, notTaken: 0, lag: 0, seq: 0 };

export type UplinkEvent = { readonly type: 'PROGRESS'; readonly stats: UplinkStats } | { readonly type: 'LOST'; readonly error: string };

export interface CloudContext extends UplinkStats {
  readonly link: string;
  /** Failed attempts since the link was last online (drives the backoff). */
  readonly attempts: number;
  readonly connects: number;
  readonly failures: number;
  readonly lastError: string | null;
}

export const cloudMachine = setup({
  types: {
    context: {} as CloudContext,
    input: {} as CloudInput,
    events: {} as UplinkEvent,
  },
  actors: {
    connect: fromPromise<void, { link: string }>(async () => {
      throw new Error('connect is provided by the cloud link');
    }),
    uplink: fromCallback<UplinkEvent, { link: string }>(() => {
      throw new Error('uplink is provided by the cloud link');
    }),
  },
  guards: {
    isTransient: ({ event }) => isTransientError(event),
  },
  actions: {
    failed: assign({
      attempts: ({ context }) => context.attempts + 1,
      failures: ({ context }) => context.failures + 1,
      lastError: ({ event }) => (event.type === 'LOST' ? event.error : errorText(event)),
    }),
  },
  delays: { retryDelay: 1_000 },
}).createMachine({
  id: 'cloud',
  context: ({ input }) => ({ link: input.link, ...EMPTY_STATS, attempts: 0, connects: 0, failures: 0, lastError: null }),
  initial: 'disconnected',
  on: {
    // The uplink also reports while offline: the backlog grows and may be trimmed.
    PROGRESS: { actions: assign(({ event }) => ({ ...event.stats })) },
  },
  states: {
    disconnected: {
      after: { retryDelay: 'connecting' },
    },
    connecting: {
      invoke: {
        src: 'connect',
        input: ({ context }) => ({ link: context.link }),
        onDone: { target: 'online', actions: assign({ attempts: 0, connects: ({ context }) => context.connects + 1, lastError: null }) },
        onError: { guard: 'isTransient', target: 'disconnected', actions: 'failed' },
      },
    },
    online: {
      invoke: { src: 'uplink', input: ({ context }) => ({ link: context.link }) },
      on: { LOST: { target: 'disconnected', actions: 'failed' } },
    },
  },
});
