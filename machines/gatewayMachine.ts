/**
 * The gateway's life: start listening, then serve until the server ends.
 * Pure: `listen` and `serve` are provided by runtime/gateway. Failing to
 * listen (port in use) or the server ending on its own is not handled here,
 * so the actor fails and its supervisor restarts it with backoff.
 */
import { assign, fromPromise, setup } from 'xstate';

export const gatewayMachine = setup({
  types: { context: {} as { port: number | null; pid: number | null } },
  actors: {
    /** Resolves with the port the server listens on and the pid of the process that serves. */
    listen: fromPromise<{ port: number; pid: number }>(async () => {
      throw new Error('listen is provided by the gateway');
    }),
    serve: fromPromise<void, void>(async () => {
      throw new Error('serve is provided by the gateway');
    }),
  },
}).createMachine({
  id: 'gateway',
  context: { port: null, pid: null },
  initial: 'starting',
  states: {
    starting: {
      invoke: { src: 'listen', onDone: { target: 'listening', actions: assign(({ event }) => event.output) } },
    },
    listening: {
      invoke: { src: 'serve' },
    },
  },
});
