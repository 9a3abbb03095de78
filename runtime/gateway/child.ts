/**
 * `voltage gateway-child`: the gateway's own process, started and supervised
 * by the gateway actor (runtime/gateway/gateway.ts) over an IPC channel. It
 * opens its own Redis connections, serves, and says `listening` with its port;
 * the runtime sends it its actors' status counts whenever a status changes and
 * answers its requests for the runtime's metrics. `stop` ends it cleanly;
 * losing the runtime (the IPC channel closes) ends it at once.
 */
import type { GatewayConfig, Role } from '../config/schema.js';
import { errorMessage } from '../errors.js';
import { createLogger } from '../logger.js';
import { openRedis, whenReady } from '../redis/connect.js';
import type { OutboxLimits } from '../redis/telemetry.js';
import { VoltageRedis } from '../redis/voltageRedis.js';
import { installFaultHandlers, report, reportRejection, useReporterLogger } from '../reporter.js';
import { startGatewayServer, type GatewayServer } from './server.js';

export interface GatewayStart {
  readonly type: 'start';
  readonly cfg: GatewayConfig;
  readonly redisUrl: string;
  readonly limits: OutboxLimits;
  readonly extraTokens: ReadonlyArray<{ name: string; role: Role; token: string }>;
  readonly logLevel: string;
  /** Where history queries go (the first VictoriaMetrics backend), if the site keeps history. */
  readonly history?: { readonly url: string; readonly maxPoints: number };
}

/** Runtime → gateway process. */
export type ToGateway =
  | GatewayStart
  | { readonly type: 'status'; readonly counts: Readonly<Record<string, number>> }
  | { readonly type: 'metrics'; readonly id: number; readonly text: string }
  | { readonly type: 'stop' };

/** Gateway process → runtime. */
export type FromGateway =
  | { readonly type: 'listening'; readonly port: number }
  | { readonly type: 'failed'; readonly message: string }
  | { readonly type: 'metrics?'; readonly id: number };

const GATEWAY_BINDINGS = { actor: 'gateway', process: 'gateway' } as const;

/** How long the gateway waits for the runtime's metrics. */
const METRICS_TIMEOUT_MS = 2_000;

export async function runGatewayChild(): Promise<number> {
  const send = process.send?.bind(process);
  if (!send) {
    process.stderr.write('voltage gateway-child is started by the runtime (it needs an IPC channel)\n');
    return 2;
  }
  const tell = (m: FromGateway) => {
    if (process.connected) send(m);
  };
  // This process is the gateway actor: a fault anywhere in it fails the actor. It is
  // logged, said to the runtime, and ends the process non-zero; the runtime restarts it.
  const bootLog = createLogger().child(GATEWAY_BINDINGS);
  useReporterLogger(bootLog);
  installFaultHandlers({
    log: bootLog,
    fatal: (e) => {
      tell({ type: 'failed', message: errorMessage(e) });
      bootLog.flush();
      process.exit(1);
    },
  });
  let counts: Readonly<Record<string, number>> = {};
  let nextId = 0;
  const asked = new Map<number, (text: string) => void>();
  let finish: (code: number) => void = () => undefined;
  const finished = new Promise<number>((resolve) => {
    finish = resolve;
  });
  // What `stop` closes: nothing until the start message came.
  let close = async () => undefined as undefined;
  let stopping = false;
  const stop = (code: number) => {
    if (stopping) return;
    stopping = true;
    void close()
      .then(undefined, (e: unknown) => report(e, { source: 'gateway close' }))
      .then(() => finish(code));
  };

  const started = new Promise<GatewayStart>((resolve) => {
    process.on('message', (m: ToGateway) => {
      switch (m.type) {
        case 'start':
          resolve(m);
          break;
        case 'status':
          counts = m.counts;
          break;
        case 'metrics':
          asked.get(m.id)?.(m.text);
          asked.delete(m.id);
          break;
        case 'stop':
          stop(0);
          break;
      }
    });
  });
  // The runtime is gone: nobody supervises this process any more.
  process.on('disconnect', () => process.exit(0));

  reportRejection(
    started.then(async (init) => {
      if (stopping) return;
      // How long a start took, and where (a restarted gateway is measured from the fault matrix and the soak).
      const startedAtMs = Math.round(process.uptime() * 1000);
      const log = createLogger(init.logLevel).child(GATEWAY_BINDINGS);
      useReporterLogger(log);
      // Fail fast: a request that needs Redis while it is unreachable gets a 503 at once, not a hang.
      const client = openRedis(init.redisUrl, log, 'gateway', { failFast: true });
      const redis = new VoltageRedis(client, init.limits, { log });
      const subscriptions = redis.subscriber();
      let server: GatewayServer | undefined;
      let redisAtMs = 0;
      close = async () => {
        await server?.stop();
        await subscriptions.close();
        await redis.close();
      };
      try {
        await whenReady(client);
        redisAtMs = Math.round(process.uptime() * 1000);
        server = await startGatewayServer(
          init.cfg,
          redis,
          subscriptions,
          {
            statusCounts: () => counts,
            metrics: () =>
              new Promise<string>((resolve) => {
                const id = nextId++;
                const timer = setTimeout(() => {
                  asked.delete(id);
                  resolve('# the runtime did not answer for its metrics\n');
                }, METRICS_TIMEOUT_MS);
                asked.set(id, (text) => {
                  clearTimeout(timer);
                  resolve(text);
                });
                tell({ type: 'metrics?', id });
              }),
          },
          init.extraTokens,
          init.history,
        );
      } catch (e) {
        log.error({ err: e }, `the gateway could not start: ${errorMessage(e)}`);
        tell({ type: 'failed', message: errorMessage(e) });
        stop(1);
        return;
      }
      const uptimeMs = Math.round(process.uptime() * 1000);
      log.info(
        { port: server.port, startMessageAtMs: startedAtMs, redisReadyAtMs: redisAtMs, listeningAtMs: uptimeMs },
        `the gateway serves on port ${server.port}, ${uptimeMs} ms after its process started (start message at ${startedAtMs} ms, Redis ready at ${redisAtMs} ms)`,
      );
      tell({ type: 'listening', port: server.port });
      // The feed reads the site's values after the gateway listens; if that fails, so does the gateway.
      try {
        await server.ready;
      } catch (e) {
        log.error({ err: e }, `the gateway could not read the site's values: ${errorMessage(e)}`);
        tell({ type: 'failed', message: errorMessage(e) });
        stop(1);
      }
    }),
    { source: 'gateway start' },
  );
  return finished;
}
