/**
 * The life of one channel: connect, poll on its interval, reconnect with
 * backoff when the link drops. Pure: the I/O (`connect`, `poll`) and the
 * delays (`pollDelay`, `reconnectDelay`) are named here and provided by
 * actors/channel. A poll error marked transient (a link problem) leads to
 * `reconnecting`; any other error is not handled, so the actor's status
 * becomes `error` and its supervisor restarts it.
 */
import { assign, fromPromise, setup } from 'xstate';
import { errorText, isTransientError } from './errors.js';

export interface ChannelInput {
  readonly channelId: string;
  readonly pollMs: number;
}

export interface PollOutcome {
  readonly points: number;
  readonly bad: number;
  /** Poll slots that passed before this poll could start. */
  readonly missed: number;
  readonly finishedAt: number;
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

/** A command arrived for this channel (a hint: the command itself is in the channel's stream). */
export type ChannelEvent = { readonly type: 'channel.commands' };

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
    poll: fromPromise<PollOutcome, { channelId: string; polls: number }>(async () => {
      throw new Error('poll is provided by the channel actor');
    }),
    /** Executes the commands waiting in the channel's stream; resolves with how many were committed. */
    commands: fromPromise<number, { channelId: string }>(async () => {
      throw new Error('commands is provided by the channel actor');
    }),
  },
  actions: {
    countPoll: assign(({ context, event }) => {
      const out = (event as unknown as { output: PollOutcome }).output;
      return {
        polls: context.polls + 1,
        missedPolls: context.missedPolls + out.missed,
        badPoints: context.badPoints + out.bad,
        lastPollAt: out.finishedAt,
        reconnectAttempt: 0,
      };
    }),
  },
  guards: {
    isTransient: ({ event }) => isTransientError(event),
    /** Whether to look for commands after this poll (a hint came, or it is time to look anyway). */
    commandsDue: () => true,
  },
  delays: {
    pollDelay: ({ context }) => context.pollMs,
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
        onError: {
          guard: 'isTransient',
          target: 'reconnecting',
          actions: assign({ linkErrors: ({ context }) => context.linkErrors + 1, lastError: ({ event }) => errorText(event) }),
        },
      },
    },
    reconnecting: {
      after: {
        reconnectDelay: {
          target: 'connecting',
          actions: assign({ reconnectAttempt: ({ context }) => context.reconnectAttempt + 1 }),
        },
      },
    },
    polling: {
      // Wait first: the adapter's pollDelay staggers the first poll of each channel
      // inside its interval, so that channels do not all poll in the same instant.
      initial: 'waiting',
      states: {
        reading: {
          invoke: {
            src: 'poll',
            input: ({ context }) => ({ channelId: context.channelId, polls: context.polls }),
            onDone: [
              { guard: 'commandsDue', target: 'commanding', actions: 'countPoll' },
              { target: 'waiting', actions: 'countPoll' },
            ],
            onError: {
              guard: 'isTransient',
              target: '#channel.reconnecting',
              actions: assign({ linkErrors: ({ context }) => context.linkErrors + 1, lastError: ({ event }) => errorText(event) }),
            },
          },
        },
        // Commands share the link with polls: they run between two polls, never during one.
        commanding: {
          invoke: {
            src: 'commands',
            input: ({ context }) => ({ channelId: context.channelId }),
            onDone: {
              target: 'waiting',
              actions: assign({ commands: ({ context, event }) => context.commands + event.output }),
            },
            onError: {
              guard: 'isTransient',
              target: '#channel.reconnecting',
              actions: assign({ linkErrors: ({ context }) => context.linkErrors + 1, lastError: ({ event }) => errorText(event) }),
            },
          },
        },
        waiting: {
          on: { 'channel.commands': { target: 'commanding' } },
          after: { pollDelay: { target: 'reading' } },
        },
      },
    },
  },
});
