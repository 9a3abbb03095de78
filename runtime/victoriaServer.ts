/**
 * Spawns a private VictoriaMetrics (Debian's `victoria-metrics`) from PATH on
 * a free loopback port with its own data directory: the embedded history
 * database of `voltage demo` (unless history.url is set) and of the tests.
 *
 * Flags that matter (and why):
 * - `-dedup.minScrapeInterval=1ms`: one sample per series per millisecond, so
 *   that the history writer may write a window again after a crash (at-least-once)
 *   without counting a value twice.
 * - `-search.latencyOffset=0s`: otherwise queries hide the last 30 s.
 * - `-search.maxStepForPointsAdjustment=1ms`: otherwise a range query whose last
 *   steps end within 1 s of now (the latency offset, never less than 1 s) gets
 *   those steps' values replaced by the step before's (or nothing): the newest
 *   point of a live trend was a copy of the one before it.
 * - `-retentionPeriod`: one retention for everything (single-node VictoriaMetrics
 *   has no per-series retention); samples older than it are also refused on write.
 *
 * Unlike the Redis one, it may keep its data directory (`dataDir` given): the
 * kill-and-restart tests start a second process on the same directory and port.
 */
import type { ChildProcess } from 'node:child_process';
import { VoltageError } from './errors.js';
import { ownedTempDir, spawnOwned } from './ownedProcess.js';
import { freePort } from './redisServer.js';

export interface VictoriaOptions {
  readonly port?: number;
  /** Kept after stop when given; a fresh temporary one (removed on stop) otherwise. */
  readonly dataDir?: string;
  /** VictoriaMetrics syntax: a number of months, or with h, d, w or y. */
  readonly retentionPeriod?: string;
  readonly bin?: string;
  /** In a process group of its own (the demo's; see spawnRedis). */
  readonly ownGroup?: boolean;
  readonly startTimeoutMs?: number;
}

export interface VictoriaServer {
  readonly url: string;
  readonly port: number;
  readonly dataDir: string;
  readonly process: ChildProcess;
  /** SIGTERM (VictoriaMetrics flushes), SIGKILL after 5 s; removes a temporary data dir. */
  stop(): Promise<void>;
  /** SIGKILL, as a crash would: what it acknowledged in its last seconds is lost. */
  kill(): Promise<void>;
}

export const VICTORIA_FLAGS: readonly string[] = [
  '-dedup.minScrapeInterval=1ms',
  '-search.latencyOffset=0s',
  '-search.maxStepForPointsAdjustment=1ms',
  '-loggerLevel=ERROR',
];

export async function spawnVictoria(opts: VictoriaOptions = {}): Promise<VictoriaServer> {
  const port = opts.port ?? (await freePort());
  // A temporary one outlives a kill() (the fault tests start a successor on it): removed by stop(), or at this process's exit.
  const temporary = opts.dataDir === undefined ? ownedTempDir('victoria') : undefined;
  const dataDir = opts.dataDir ?? temporary!.path;
  const child = spawnOwned(
    opts.bin ?? 'victoria-metrics',
    [`-storageDataPath=${dataDir}`, `-httpListenAddr=127.0.0.1:${port}`, `-retentionPeriod=${opts.retentionPeriod ?? '1'}`, ...VICTORIA_FLAGS],
    { stdio: ['ignore', 'pipe', 'pipe'], detached: opts.ownGroup === true },
  );
  let output = '';
  const keep = (d: Buffer) => {
    output = (output + d.toString()).slice(-4_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  const fail = (why: string) =>
    new VoltageError('runtime', 'VICTORIA_SPAWN', `could not start victoria-metrics on port ${port}: ${why}${output ? `\n${output}` : ''}`);
  let spawnError: Error | undefined;
  child.once('error', (e) => {
    spawnError = e;
  });
  const deadline = Date.now() + (opts.startTimeoutMs ?? 15_000);
  for (;;) {
    if (spawnError) throw fail(spawnError.message);
    if (child.exitCode !== null) throw fail(`it exited with code ${child.exitCode}`);
    if (await healthy(url)) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw fail(`/health did not answer within ${opts.startTimeoutMs ?? 15_000} ms`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const alive = () => child.exitCode === null && child.signalCode === null;
  return {
    url,
    port,
    dataDir,
    process: child,
    async stop() {
      if (alive()) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(timer);
      }
      temporary?.remove();
    },
    async kill() {
      if (alive()) child.kill('SIGKILL');
      await exited;
    },
  };
}

/** Whether VictoriaMetrics (or InfluxDB, which has the same endpoint) at `url` answers /health. */
export async function healthy(url: string, timeoutMs = 1_000): Promise<boolean> {
  try {
    const r = await fetch(`${url}/health`, { signal: AbortSignal.timeout(timeoutMs) });
    await r.arrayBuffer();
    return r.ok;
  } catch {
    return false;
  }
}

/**
 * Which process of the database answers: its start (s since the epoch) and its uptime (s), both whole seconds, and how
 * many times its /metrics had been read (this read included): a count that only grows within one process, so that a
 * successor started within the same second, read fewer times, is told apart (sameProcess in the history writer).
 */
export interface DatabaseProcess {
  readonly startS: number;
  readonly uptimeS: number;
  readonly metricsReads: number;
}

/**
 * VictoriaMetrics' process, from its /metrics (`process_start_time_seconds`, `vm_app_uptime_seconds`), or
 * undefined when it does not say (another backend, an error): the history writer then takes the database
 * for restarted, the safe side.
 */
export async function databaseProcess(url: string, timeoutMs = 1_000): Promise<DatabaseProcess | undefined> {
  try {
    const r = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(timeoutMs) });
    const text = await r.text();
    if (!r.ok) return undefined;
    const value = (name: string) => {
      const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
      const n = m ? Number(m[1]) : Number.NaN;
      return Number.isFinite(n) ? n : undefined;
    };
    const startS = value('process_start_time_seconds');
    const uptimeS = value('vm_app_uptime_seconds');
    const metricsReads = value('vm_http_requests_total\\{path="/metrics"\\}') ?? 0;
    return startS === undefined || uptimeS === undefined ? undefined : { startS, uptimeS, metricsReads };
  } catch {
    return undefined;
  }
}
