/**
 * A process for test/unit/actor-faults.test.ts: one actor under a supervisor,
 * with the runtime's fault handlers. Its first incarnation leaves a rejected
 * promise unhandled, its second throws in a timer; then a promise outside any
 * actor is rejected. Logs JSON lines on stdout; bounded by a 5 s deadline.
 */
import { setup } from 'xstate';
import { failCurrentActor, machineChild } from '../../runtime/actorHost.js';
import { VoltageError } from '../../runtime/errors.js';
import { createLogger } from '../../runtime/logger.js';
import type { ActorRegistry } from '../../runtime/registry.js';
import { installFaultHandlers, useReporterLogger } from '../../runtime/reporter.js';
import { Supervisor } from '../../runtime/supervisor.js';

const log = createLogger('info');
useReporterLogger(log);
installFaultHandlers({ log, failActor: failCurrentActor });

const registry = { snapshot: () => undefined } as unknown as ActorRegistry;
const machine = setup({}).createMachine({ id: 'idle', initial: 'running', states: { running: {} } });
let builds = 0;
let starts = 0;

const channel = machineChild({
  id: 'channel/7',
  registry,
  async build() {
    const build = ++builds;
    if (build === 1) {
      setTimeout(() => {
        void Promise.reject(new VoltageError('device', 'PORT_GONE', 'the serial port vanished', { channel: '7', path: '/dev/ttyS7' }));
      }, 20);
    } else if (build === 2) {
      setTimeout(() => {
        throw new Error('thrown in a timer');
      }, 20);
    }
    return {
      machine,
      input: undefined as never,
      dispose: async () => {
        log.info({ event: 'disposed', build }, 'disposed');
      },
    };
  },
});

const sup = new Supervisor(
  {
    id: 'channels',
    strategy: 'one_for_one',
    intensity: 5,
    periodMs: 60_000,
    backoff: { minBackoffMs: 10, maxBackoffMs: 50, randomFactor: 0, resetBackoffAfterMs: 60_000 },
    onEvent: (e) => {
      log.info({ event: e.type, child: e.child }, e.type);
      // The supervisor's own work runs outside any actor: a fault here is the process's.
      if (e.type === 'started' && ++starts === 3)
        setTimeout(() => {
          void Promise.reject(new Error('nobody owns this'));
        }, 20);
    },
  },
  [channel],
);
await sup.start();
setTimeout(() => {
  log.info('still alive');
  process.exit(0);
}, 5_000).unref();
// Keep the process up until something ends it.
setInterval(() => undefined, 1_000);
