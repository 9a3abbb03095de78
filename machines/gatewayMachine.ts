/**
 * The gateway's life: start listening, then serve. Pure: `listen` is provided
 * by runtime/gateway. Failing to listen (port in use) is not handled here, so
 * the actor fails and its supervisor retries it with backoff.
 */
import { assign, fromPromise, setup } from 'xstate';

export const gatewayMachine = setup({
  types: { context: {} as { port: number | null } },
  actors: {
    listen: fromPromise<number>(async () => {
      throw new Error('listen is provided by the gateway');
    }),
  },
}).createMachine({
  id: 'gateway',
  context: { port: null },
  initial: 'starting',
  states: {
    starting: {
      invoke: { src: 'listen', onDone: { target: 'listening', actions: assign({ port: ({ event }) => event.output }) } },
    },
    listening: {},
  },
});
