/**
 * The set-up most integration suites share: a private redis-server for the
 * suite, a raw client and a wrapper on it, and after each test the runtime and
 * simulator it started stopped and the database emptied.
 */
import { afterAll, afterEach, beforeAll } from 'vitest';
import type { Redis } from 'ioredis';
import type { CommandRecord } from '../../runtime/domain/commands.js';
import type { VoltageRedis } from '../../runtime/redis/voltageRedis.js';
import type { RunningRuntime } from '../../runtime/runtime.js';
import type { RunningSim } from '../../runtime/sim.js';
import { eventually, rawClient, spawnRedis, wrapper, type RedisServer } from './servers.js';

export interface SuiteContext {
  server: RedisServer;
  raw: Redis;
  bus: VoltageRedis;
  /** Set by a test; stopped after it. */
  running: RunningRuntime | undefined;
  sim: RunningSim | undefined;
  /** More things to undo after the test. */
  cleanups: Array<() => unknown>;
}

export function privateRedisSuite(): SuiteContext {
  const ctx = { running: undefined, sim: undefined, cleanups: [] } as unknown as SuiteContext;
  beforeAll(async () => {
    ctx.server = await spawnRedis();
    ctx.raw = rawClient(ctx.server);
    ctx.bus = wrapper(ctx.server);
  });
  afterEach(async () => {
    await ctx.running?.stop();
    await ctx.sim?.stop();
    for (const undo of ctx.cleanups.splice(0)) await undo();
    ctx.running = undefined;
    ctx.sim = undefined;
    await ctx.raw.flushall();
  });
  afterAll(async () => {
    ctx.raw.disconnect();
    await ctx.bus.close();
    await ctx.server.stop();
  });
  return ctx;
}

/** Waits until a command has ended (any status but pending) and returns its record. */
export function commandResult(bus: VoltageRedis, id: string, timeoutMs = 5_000): Promise<CommandRecord> {
  return eventually(async () => {
    const c = await bus.commands.command(id);
    return c && c.status !== 'pending' ? c : undefined;
  }, timeoutMs);
}
