/**
 * The one place tests start real servers: a private redis-server on a free
 * loopback port per suite, removed afterwards. Tests never touch a Redis
 * they did not start.
 */
import { mkdtempSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll } from 'vitest';
import { spawnRedis, type RedisServer } from '../../runtime/redisServer.js';
import type { OutboxLimits } from '../../runtime/redis/telemetry.js';
import { VoltageRedis } from '../../runtime/redis/voltageRedis.js';

export { spawnRedis, type RedisServer };

export const quietLog = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

export function rawClient(server: RedisServer): Redis {
  const c = new Redis(server.url, { maxRetriesPerRequest: 1, lazyConnect: false });
  c.on('error', () => undefined); // tests stop servers on purpose
  return c;
}

export function wrapper(server: RedisServer, limits: OutboxLimits = { outboxMaxMB: 16 }): VoltageRedis {
  const c = new Redis(server.url, { maxRetriesPerRequest: null });
  c.on('error', () => undefined);
  return new VoltageRedis(c, limits);
}

/** A private redis-server for one test file, started before its tests and stopped after them, with a raw client and the wrapper on it. */
export function usePrivateRedis(limits?: OutboxLimits): { readonly server: RedisServer; readonly raw: Redis; readonly bus: VoltageRedis } {
  const t = {} as { server: RedisServer; raw: Redis; bus: VoltageRedis };
  beforeAll(async () => {
    t.server = await spawnRedis();
    t.raw = rawClient(t.server);
    t.bus = wrapper(t.server, limits);
  });
  afterAll(async () => {
    t.raw.disconnect();
    await t.bus.close();
    await t.server.stop();
  });
  return t;
}

/** Writes a config folder from file name → content; returns its path. */
export function writeSite(files: Readonly<Record<string, string>>): string {
  const dir = mkdtempSync(join(tmpdir(), 'voltage-site-'));
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, name)), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  return dir;
}

/** Polls `check` every `everyMs` until it returns a value (not undefined/false) or `timeoutMs` passes. */
export async function eventually<T>(check: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 10_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Whether a process runs: it exists and is not a zombie (one whose parent died waits for init to reap it). */
export function pidAlive(pid: number): boolean {
  try {
    // /proc/<pid>/stat: "pid (comm) state …"; comm may hold spaces and parentheses, the state follows the last ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** The processes whose parent is `pid`, now. */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(name));
    } catch {
      // Gone meanwhile.
    }
  }
  return out;
}
