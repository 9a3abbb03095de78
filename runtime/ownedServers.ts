/**
 * The servers `voltage demo` and `voltage start` start for themselves (the
 * demo's private redis-server, the embedded victoria-metrics) are children of
 * a supervisor like any actor: one that dies is started again on the same
 * port (and the same data directory), with backoff, and a log line says so.
 * The supervisor is the CLI process's own, beside the runtime's tree: the
 * runtime reports its tree to Redis, so Redis cannot be a child of that tree.
 *
 * A restarted Redis has lost its data (the demo's runs without persistence);
 * the runtime restores what it owns (runtime/redis/core.ts reload, the site and
 * the actor records) as it does after any such loss. A restarted
 * VictoriaMetrics keeps what it had flushed; the history writer writes its
 * recent window again once the database answers (actors/history).
 */
import type { ChildProcess } from 'node:child_process';
import type { RunningChild } from './childSpec.js';
import type { Logger } from './logger.js';
import { ownedTempDir } from './ownedProcess.js';
import { spawnRedis, type RedisServer } from './redisServer.js';
import { Supervisor } from './supervisor.js';
import { spawnVictoria, type VictoriaServer } from './victoriaServer.js';

/** A server process this process started. */
interface Spawned {
  readonly port: number;
  readonly process: ChildProcess;
  stop(): Promise<void>;
}

export interface Owned<S extends Spawned> {
  readonly url: string;
  readonly port: number;
  /** The server now (a new one after each restart). */
  current(): S;
  stop(): Promise<void>;
}

export type OwnedRedis = Owned<RedisServer>;
export type OwnedVictoria = Owned<VictoriaServer>;

export interface OwnedBackoff {
  readonly minBackoffMs: number;
  readonly maxBackoffMs: number;
  readonly randomFactor: number;
  readonly resetBackoffAfterMs: number;
}

const DEFAULT_BACKOFF: OwnedBackoff = { minBackoffMs: 200, maxBackoffMs: 5_000, randomFactor: 0.2, resetBackoffAfterMs: 60_000 };

/**
 * `first` is the server already started; `again(port)` starts its successor on the same port.
 * `name` is the binary's name, `after` what the log line adds about the restart's consequence.
 */
async function owned<S extends Spawned>(
  log: Logger,
  name: string,
  first: S,
  again: (port: number) => Promise<S>,
  url: string,
  after: string,
  backoff: OwnedBackoff,
): Promise<Owned<S>> {
  let server = first;
  const port = server.port;
  let fresh = true;
  const start = async (): Promise<RunningChild> => {
    if (!fresh) {
      server = await again(port);
      log.warn(
        { port, pid: server.process.pid },
        `the ${name} this process started is running again on port ${port} (pid ${String(server.process.pid)}); ${after}`,
      );
    }
    fresh = false;
    const mine = server;
    let stopping = false;
    const listeners: Array<(r: { kind: 'error'; error: unknown }) => void> = [];
    mine.process.once('exit', (code, signal) => {
      if (stopping) return;
      log.error({ port, code, signal }, `the ${name} this process started died (${signal ?? `exit code ${String(code)}`}); its supervisor starts it again`);
      for (const l of listeners) l({ kind: 'error', error: new Error(`${name} exited (${signal ?? code})`) });
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
  const sup = new Supervisor({ id: `owned-${name}`, strategy: 'one_for_one', intensity: 10, periodMs: 60_000, backoff }, [
    { id: name, restart: 'permanent', type: 'worker', shutdown: 10_000, start },
  ]);
  await sup.start();
  return { url, port, current: () => server, stop: () => sup.stop() };
}

/** A private redis-server on a free port, restarted with backoff whenever it dies. */
export async function ownedRedis(log: Logger, backoff: OwnedBackoff = DEFAULT_BACKOFF): Promise<OwnedRedis> {
  const first = await spawnRedis({ ownGroup: true });
  return owned(log, 'redis-server', first, (port) => spawnRedis({ ownGroup: true, port }), first.url, 'the runtime restores the site in it', backoff);
}

export interface OwnedVictoriaOptions {
  readonly port: number;
  /** Kept when given; else a temporary one, kept across restarts and removed by stop(). */
  readonly dataDir?: string;
  readonly retentionPeriod?: string;
}

/** A private victoria-metrics on `port`, restarted with backoff on the same port and data directory whenever it dies. */
export async function ownedVictoria(log: Logger, opts: OwnedVictoriaOptions, backoff: OwnedBackoff = DEFAULT_BACKOFF): Promise<OwnedVictoria> {
  const temporary = opts.dataDir === undefined ? ownedTempDir('victoria') : undefined;
  const dataDir = opts.dataDir ?? temporary!.path;
  const spawnIt = (port: number) =>
    spawnVictoria({ port, dataDir, ownGroup: true, ...(opts.retentionPeriod !== undefined ? { retentionPeriod: opts.retentionPeriod } : {}) });
  let first: VictoriaServer;
  try {
    first = await spawnIt(opts.port);
  } catch (e) {
    temporary?.remove();
    throw e;
  }
  const server = await owned(log, 'victoria-metrics', first, spawnIt, first.url, 'the history writer writes its recent window again', backoff);
  return {
    ...server,
    async stop() {
      await server.stop();
      temporary?.remove();
    },
  };
}
