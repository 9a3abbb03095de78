/**
 * Spawns a private `redis-server` from PATH on a free loopback port, keeping
 * nothing on disk. Used by `voltage demo` when REDIS_URL is not set, and by
 * the tests (which never touch a Redis they did not start).
 */
import type { ChildProcess } from 'node:child_process';
import { connect, createServer } from 'node:net';
import { VoltageError } from './errors.js';
import { ownedTempDir, spawnOwned } from './ownedProcess.js';

export interface RedisServer {
  readonly url: string;
  readonly port: number;
  readonly process: ChildProcess;
  /** Stops the server (SIGTERM, then SIGKILL after 3 s). */
  stop(): Promise<void>;
}

/** Whether a server could listen on host:port now. */
export function portFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen(port, host, () => srv.close(() => resolve(true)));
  });
}

/**
 * A free loopback port for a server to listen on, taken below Linux's
 * ephemeral range (32768+): a port handed out by `listen(0)` can be taken by
 * an outgoing connection's local port before the server binds it.
 */
const handedOut = new Set<number>();

export async function freePort(): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    // Never the same port twice from this process: a port is only bound later, by whoever asked.
    if (handedOut.has(port) || !(await portFree('127.0.0.1', port))) continue;
    handedOut.add(port);
    return port;
  }
  throw new VoltageError('runtime', 'NO_FREE_PORT', 'no free loopback port found in 20000-31999');
}

/**
 * The Redis settings VoltageEMS recommends (README, "Redis for a site"). A channel
 * or model hash of 100 points is a listpack under Redis's default (128 entries),
 * where every field written is a linear search: c2m costs Redis ~22 % more.
 */
export const REDIS_TUNING: readonly string[] = ['--hash-max-listpack-entries', '32'];

/**
 * `ownGroup`: in a process group of its own (the demo's), so that a Ctrl-C in
 * the terminal stops this process, which stops the site and then this server,
 * rather than the server dying under a site still writing to it. Tests leave
 * it in theirs, so that whatever kills their group kills it too.
 */
export async function spawnRedis(
  /** `args`: more redis-server options (a fault test slows the loading of an AOF with `--key-load-delay`). */
  opts: { port?: number; bin?: string; ownGroup?: boolean; aofDir?: string; args?: readonly string[] } = {},
): Promise<RedisServer> {
  const port = opts.port ?? (await freePort());
  // `aofDir`: append-only file in that folder, kept after stop (a restart on it finds the data again).
  // Otherwise a temporary one, its working directory only (nothing is saved): removed as soon as it exits,
  // stopped or not (a restarted one, on the same port, gets a new one).
  const temporary = opts.aofDir === undefined ? ownedTempDir('redis') : undefined;
  const dir = opts.aofDir ?? temporary!.path;
  const child = spawnOwned(
    opts.bin ?? 'redis-server',
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      opts.aofDir ? 'yes' : 'no',
      '--appendfsync',
      'always',
      '--dir',
      dir,
      '--daemonize',
      'no',
      '--protected-mode',
      'yes',
      '--loglevel',
      'warning',
      ...REDIS_TUNING,
      ...(opts.args ?? []),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], detached: opts.ownGroup === true },
  );
  let output = '';
  child.stdout?.on('data', (d: Buffer) => {
    output += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    output += d.toString();
  });
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => {
      temporary?.remove();
      resolve();
    }),
  );
  await new Promise<void>((resolve, reject) => {
    let tries = 0;
    const fail = (e: Error) => {
      temporary?.remove(); // a spawn that failed may say no 'exit'
      reject(new VoltageError('redis', 'REDIS_SPAWN', `could not start redis-server on port ${port}: ${e.message}${output ? `\n${output}` : ''}`));
    };
    child.once('error', fail);
    const probe = () => {
      if (child.exitCode !== null) return fail(new Error(`it exited with code ${child.exitCode}`));
      const c = connect(port, '127.0.0.1');
      c.once('connect', () => {
        c.destroy();
        resolve();
      });
      c.once('error', () => {
        c.destroy();
        if (++tries <= 100) {
          setTimeout(probe, 50);
          return;
        }
        // Still running: killed, and refused once it has exited (its exit removed its temporary directory;
        // removing it under a running server would leave the server, and its files, behind).
        child.kill('SIGKILL');
        void exited.then(() => fail(new Error('it did not accept connections within 5 s; it was killed')));
      });
    };
    probe();
  });
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    process: child,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 3_000);
        await exited; // its temporary directory is removed then
        clearTimeout(timer);
      }
    },
  };
}
