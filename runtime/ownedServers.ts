/**
 * The servers a demo starts for itself (its private redis-server) are children
 * of a supervisor like any actor: one that dies is started again on the same
 * port, with backoff, and a log line says so. The supervisor is the demo
 * process's own, beside the runtime's tree: the runtime reports its tree to
 * Redis, so Redis cannot be a child of that tree.
 *
 * A restarted Redis has lost its data (the demo's runs without persistence);
 * the runtime restores what it owns (runtime/redis/core.ts reload, the site and
 * the actor records) as it does after any such loss.
 */
import type { Logger } from './logger.js';
import { spawnRedis, type RedisServer } from './redisServer.js';
import { Supervisor } from './supervisor.js';
import type { RunningChild } from './childSpec.js';

export interface OwnedRedis {
  readonly url: string;
  readonly port: number;
  /** The server now (a new one after each restart). */
  current(): RedisServer;
  stop(): Promise<void>;
}

/** A private redis-server on a free port, restarted with backoff whenever it dies. */
export async function ownedRedis(
  log: Logger,
  backoff = { minBackoffMs: 200, maxBackoffMs: 5_000, randomFactor: 0.2, resetBackoffAfterMs: 60_000 },
): Promise<OwnedRedis> {
  let server = await spawnRedis({ ownGroup: true });
  const port = server.port;
  let first = true;
  const start = async (): Promise<RunningChild> => {
    if (!first) {
      server = await spawnRedis({ ownGroup: true, port });
      log.warn(
        { port, pid: server.process.pid },
        `the demo's redis-server is running again on port ${port} (pid ${String(server.process.pid)}); the runtime restores the site in it`,
      );
    }
    first = false;
    const mine = server;
    let stopping = false;
    const listeners: Array<(r: { kind: 'error'; error: unknown }) => void> = [];
    mine.process.once('exit', (code, signal) => {
      if (stopping) return;
      log.error({ port, code, signal }, `the demo's redis-server died (${signal ?? `exit code ${String(code)}`}); its supervisor starts it again`);
      for (const l of listeners) l({ kind: 'error', error: new Error(`redis-server exited (${signal ?? code})`) });
    });
    return {
      async stop() {
        stopping = true;
        await mine.stop();
      },
      onExit(listener) {
        listeners.push(listener);
      },
    };
  };
  const sup = new Supervisor({ id: 'demo-servers', strategy: 'one_for_one', intensity: 10, periodMs: 60_000, backoff }, [
    { id: 'redis-server', restart: 'permanent', type: 'worker', shutdown: 5_000, start },
  ]);
  await sup.start();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    current: () => server,
    stop: () => sup.stop(),
  };
}
