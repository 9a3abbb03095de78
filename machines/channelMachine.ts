/**
 * The life of one channel: connect, poll, reconnect with backoff when the link
 * drops. Pure: the I/O (`connect`, and `polls`, the loop that polls on the
 * channel's grid and runs commands between two polls) and the reconnect delay
 * are named here and provided by actors/channel.
 *
 * The poll loop is one long-running invoked actor rather than an invocation per
 * poll: at 1,000 polls/s an invocation and two transitions per poll cost ~12 %
 * of a core. The loop tells the machine what it did with `channel.polled`
 * (counters since its last report, about once a second). When the loop rejects
 * with an error marked transient (a link problem) the machine goes to
 * `reconnecting` (whose entry marks the channel's points `comm-failure`: a
 * value nobody can read is not reported `good`); any other error is not
 * handled, so the actor's status becomes `error` and its supervisor restarts it.
 */
import { assign, fromPromise, setup, type AnyActorRef } from 'xstate';
import { errorText, isTransientError } from './errors.js';

export interface ChannelInput {
  readonly channelId: string;
  readonly pollMs: number;
}

/** What the poll loop did since its last report. */
export interface PollReport {
  readonly type: 'channel.polled';
  readonly polls: number;
  /** Poll slots that passed before a poll could start. */
  readonly missed: number;
  readonly bad: number;
  readonly commands: number;
  readonly lastPollAt: number;
}

export interface PollLoopInput {
  readonly channelId: string;
  /** The channel's actor: the loop sends it its `channel.polled` reports. */
  readonly parent: AnyActorRef;
}

export interface ChannelContext {
  readonly channelId: string;
  readonly pollMs: number;
  readonly polls: number;
  readonly missedPolls: number;
  readonly badPoints: number;
  readonly linkErrors: number;
  readonly reconnectAttempt: number;
  readonly commands: number;
  readonly lastPollAt: number | null;
  readonly lastError: string | null;
}

export type ChannelEvent = PollReport;

export const channelMachine = setup({
  types: {
    context: {} as ChannelContext,
    input: {} as ChannelInput,
    events: {} as ChannelEvent,
  },
  actors: {
    connect: fromPromise<void, { channelId: string }>(async () => {
      throw new Error('connect is provided by the channel actor');
    }),
    /** Polls until it is stopped (never resolves) or fails (rejects). */
    polls: fromPromise<void, PollLoopInput>(async () => {
      throw new Error('polls is provided by the channel actor');
    }),
  },
  actions: {
    countPolls: assign(({ context, event }) => ({
      polls: context.polls + event.polls,
      missedPolls: context.missedPolls + event.missed,
      badPoints: context.badPoints + event.bad,
      commands: context.commands + event.commands,
      lastPollAt: event.lastPollAt,
      reconnectAttempt: 0,
    })),
    countLinkError: assign({ linkErrors: ({ context }) => context.linkErrors + 1, lastError: ({ event }) => errorText(event) }),
    /** The link is down: the channel's points are marked (provided by the channel actor: no value stays `good` while nothing reads it). */
    linkDown: () => undefined,
  },
  guards: {
    isTransient: ({ event }) => isTransientError(event),
  },
  delays: {
    reconnectDelay: () => 1_000,
  },
}).createMachine({
  id: 'channel',
  context: ({ input }) => ({
    channelId: input.channelId,
    pollMs: input.pollMs,
    polls: 0,
    missedPolls: 0,
    badPoints: 0,
    linkErrors: 0,
    reconnectAttempt: 0,
    commands: 0,
    lastPollAt: null,
    lastError: null,
  }),
  initial: 'connecting',
  states: {
    connecting: {
      invoke: {
        src: 'connect',
        input: ({ context }) => ({ channelId: context.channelId }),
        onDone: { target: 'polling' },
        onError: { guard: 'isTransient', target: 'reconnecting', actions: 'countLinkError' },
      },
    },
    reconnecting: {
      entry: 'linkDown',
      after: {
        reconnectDelay: {
          target: 'connecting',
          actions: assign({ reconnectAttempt: ({ context }) => context.reconnectAttempt + 1 }),
        },
      },
    },
    polling: {
      // The loop waits first: the adapter staggers the first poll of each channel inside
      // its interval, so that channels do not all poll in the same instant. Commands share
      // the link with polls: the loop runs them between two polls, never during one.
      invoke: {
        src: 'polls',
        input: ({ context, self }) => ({ channelId: context.channelId, parent: self }),
        onError: { guard: 'isTransient', target: 'reconnecting', actions: 'countLinkError' },
      },
      on: { 'channel.polled': { actions: 'countPolls' } },
    },
  },
});
