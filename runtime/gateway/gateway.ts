/**
 * The gateway as a supervised actor: gatewayMachine bound to the gateway's own
 * process (`voltage gateway-child`, runtime/gateway/child.ts), which serves the
 * REST API and the WebSocket feed on its own Redis connections. In its own
 * process the API keeps its latency while the site is busy (no shared event
 * loop, no shared garbage collection), and a request flood cannot delay a
 * poll. The actor fails when the process cannot listen or exits on its own;
 * its supervisor then restarts it with backoff, like any other actor.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { fromPromise } from 'xstate';
import { gatewayMachine } from '../../machines/gatewayMachine.js';
import { machineChild } from '../actorHost.js';
import type { ActorKind } from '../actorKind.js';
import type { GatewayConfig, Role } from '../config/schema.js';
import { VoltageError } from '../errors.js';
import { prometheus } from '../metrics.js';
import { report } from '../reporter.js';
import type { OutboxLimits } from '../redis/telemetry.js';
import type { ActorRegistry } from '../registry.js';
import type { ChildSpec } from '../supervisor.js';
import type { FromGateway, ToGateway } from './child.js';
import { queryBackend, type HistoryConfig } from '../config/history.js';

export interface GatewayDeps {
  readonly redisUrl: string;
  readonly limits: OutboxLimits;
  readonly registry: ActorRegistry;
  readonly logLevel: string;
  /** Tokens given at start (the demo makes one per role); config tokens are hashes. */
  readonly extraTokens?: ReadonlyArray<{ name: string; role: Role; token: string }>;
  /** Told the port once the server listens (port 0 in config: any free port). */
  readonly onListening?: (port: number) => void;
  /** Where history queries go, if the site keeps history. */
  readonly history?: { readonly url: string; readonly maxPoints: number };
}

/** The `voltage` command, from the sources (runtime/gateway/) or from the bundle (dist/). */
const BIN_CANDIDATES = ['../bin/voltage.js', '../runtime/bin/voltage.js'].map((p) => fileURLToPath(new URL(p, import.meta.url)));
const VOLTAGE_BIN = BIN_CANDIDATES.find((p) => existsSync(p)) ?? BIN_CANDIDATES[0]!;

/** The gateway process's heap: the values it serves are copies of what Redis holds, far below this. */
const GATEWAY_NODE_FLAGS = ['--max-old-space-size=128', '--max-semi-space-size=4'];
/** How long a stopping gateway process may take before it is killed. */
const STOP_MS = 3_000;

export function gatewayChild(cfg: GatewayConfig, deps: GatewayDeps): ChildSpec {
  return machineChild({
    id: 'gateway',
    registry: deps.registry,
    async build() {
      // Its own process group: a Ctrl-C in the terminal reaches the runtime, which stops the
      // gateway in its turn; the gateway ends by itself if the runtime is gone (IPC closed).
      const proc: ChildProcess = fork(VOLTAGE_BIN, ['gateway-child'], {
        // VOLTAGE_GATEWAY_CPU_PROF=<dir>: the gateway process writes a CPU profile there when it stops (benchmarks).
        execArgv: process.env.VOLTAGE_GATEWAY_CPU_PROF
          ? [...GATEWAY_NODE_FLAGS, '--cpu-prof', `--cpu-prof-dir=${process.env.VOLTAGE_GATEWAY_CPU_PROF}`]
          : GATEWAY_NODE_FLAGS,
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        detached: true,
      });
      const tell = (m: ToGateway) => {
        if (proc.connected) proc.send(m);
      };
      const exited = new Promise<string>((resolve) => {
        proc.once('exit', (code, signal) => resolve(signal ? `signal ${signal}` : `code ${code}`));
        proc.once('error', (e) => resolve(e.message));
      });
      let failure: string | undefined;
      const listening = new Promise<number>((resolve, reject) => {
        proc.on('message', (m: FromGateway) => {
          switch (m.type) {
            case 'listening':
              resolve(m.port);
              break;
            case 'failed':
              failure = m.message;
              break;
            case 'metrics?':
              void prometheus.metrics().then((text) => tell({ type: 'metrics', id: m.id, text }));
              break;
          }
        });
        void exited.then((how) => reject(new VoltageError('api', 'GATEWAY_EXITED', failure ?? `the gateway process exited (${how}) before it listened`)));
      });
      // While the actor runs, its listen state takes the rejection. Once it is stopping nobody does: a failure the
      // process gave is reported then; an exit that the stop caused is no error.
      let stopping = false;
      listening.catch((e: unknown) => {
        if (stopping && failure !== undefined) report(e, { source: 'gateway: the process failed while the actor stopped', actor: 'gateway' });
      });
      const offStatus = deps.registry.onStatusChange((counts) => tell({ type: 'status', counts }));
      tell({
        type: 'start',
        cfg,
        redisUrl: deps.redisUrl,
        limits: deps.limits,
        extraTokens: deps.extraTokens ?? [],
        logLevel: deps.logLevel,
        ...(deps.history ? { history: deps.history } : {}),
      });
      tell({ type: 'status', counts: deps.registry.statusCounts() });

      const machine = gatewayMachine.provide({
        actors: {
          listen: fromPromise(async () => {
            const port = await listening;
            deps.onListening?.(port);
            return { port, pid: proc.pid ?? 0 };
          }),
          // Serving until the process ends on its own: that is a failure of this actor.
          serve: fromPromise<void, void>(async () => {
            const how = await exited;
            throw new VoltageError('api', 'GATEWAY_EXITED', `the gateway process exited (${how})${failure ? `: ${failure}` : ''}`);
          }),
        },
      });
      return {
        machine,
        input: undefined as never,
        dispose: async () => {
          stopping = true;
          offStatus();
          if (proc.exitCode !== null || proc.signalCode !== null) return;
          tell({ type: 'stop' });
          const timer = setTimeout(() => proc.kill('SIGKILL'), STOP_MS);
          await exited;
          clearTimeout(timer);
        },
      };
    },
  });
}

/** The database that history queries go to: the first VictoriaMetrics backend, once its url is known. */
function historyQueriesOf(h: HistoryConfig | undefined): { history?: { url: string; maxPoints: number } } {
  const url = h ? queryBackend(h)?.url : undefined;
  return h && url ? { history: { url, maxPoints: h.maxPoints } } : {};
}

/** The gateway: one actor, a child of the root, when the config has a gateway section. */
export const gatewayKind: ActorKind = {
  kind: 'gateway',
  section: 'gateway',
  children: (site, deps) =>
    site.gateway
      ? [
          gatewayChild(site.gateway, {
            redisUrl: deps.redisUrl,
            limits: site.runtime.redis,
            registry: deps.registry,
            logLevel: deps.log.level,
            extraTokens: deps.gatewayTokens,
            onListening: (port) => deps.onListening('gateway', port),
            ...historyQueriesOf(site.history),
          }),
        ]
      : [],
};
