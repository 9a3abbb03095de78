/**
 * Every Redis error the runtime acts on reaches it as a RedisError with a code,
 * produced here against a private redis-server: a Function that is missing
 * (the library not loaded), a consumer group made twice (BUSYGROUP, which is
 * fine), a read on a group that is gone (NOGROUP), Redis not answering in
 * time, and a Function refusing its arguments.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { REDIS_ERROR_CODES, RedisError, RedisFunctionError, type RedisErrorCode } from '../../runtime/errors.js';
import { openRedis, readyWithin } from '../../runtime/redis/connect.js';
import { toRedisError } from '../../runtime/redis/core.js';
import { LIBRARY_VERSION } from '../../runtime/redis/library.js';
import { KEYS } from '../../runtime/redis/keys.js';
import { VoltageRedis } from '../../runtime/redis/voltageRedis.js';
import { quietLog, sleep, usePrivateRedis } from '../helpers/servers.js';

const t = usePrivateRedis();
beforeEach(async () => {
  await t.raw.flushall();
  await t.raw.call('FUNCTION', 'FLUSH');
});

/** The RedisError a promise rejects with (fails the test when it resolves or rejects with something else). */
async function redisErrorOf(p: Promise<unknown>): Promise<RedisError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(RedisError);
  return e as RedisError;
}

function expectCode(e: RedisError, code: RedisErrorCode): void {
  expect(e.code, e.message).toBe(code);
  expect(e.kind).toBe('redis');
}

describe('a missing Function', () => {
  it('is REDIS_FUNCTION_MISSING when the library is not loaded', async () => {
    expectCode(await redisErrorOf(t.bus.site.libraryVersion()), REDIS_ERROR_CODES.functionMissing);
    const rawReply = await t.raw.fcall('c2m', 0).then(
      () => undefined,
      (e: unknown) => e,
    );
    expectCode(toRedisError(rawReply, 'c2m', true), REDIS_ERROR_CODES.functionMissing);
  });

  it('is recovered by a Function call: the library is loaded again and the call goes through', async () => {
    expect(await t.bus.actors.report('a/1', { status: 'running' })).toBe(1);
    expect(await t.bus.site.libraryVersion()).toBe(LIBRARY_VERSION);
  });
});

describe('BUSYGROUP', () => {
  it('is REDIS_BUSYGROUP from XGROUP CREATE, and making a group twice is not an error', async () => {
    expect(await t.bus.core.ensureGroup('s1', 'g')).toBe(true);
    expect(await t.bus.core.ensureGroup('s1', 'g')).toBe(false);
    await t.bus.commands.ensureCommandGroup('v1', 'channel');
    await t.bus.commands.ensureCommandGroup('v1', 'channel');
    expect(await t.raw.xinfo('GROUPS', KEYS.commandStream('v1'))).toHaveLength(1);
    const again = await t.raw.xgroup('CREATE', 's1', 'g', '0').then(
      () => undefined,
      (e: unknown) => e,
    );
    expectCode(toRedisError(again, 'XGROUP CREATE'), REDIS_ERROR_CODES.busyGroup);
  });
});

describe('NOGROUP', () => {
  it('is REDIS_NOGROUP when a channel reads commands from a group that is gone', async () => {
    const e = await redisErrorOf(t.bus.commands.readCommands('v1', 'channel', 'v1', false));
    expectCode(e, REDIS_ERROR_CODES.noGroup);
    expect(e.context).toMatchObject({ command: 'XREADGROUP' });
    await t.bus.commands.ensureCommandGroup('v1', 'channel');
    expect(await t.bus.commands.readCommands('v1', 'channel', 'v1', false)).toEqual([]);
  });
});

describe('a timeout', () => {
  it('is REDIS_TIMEOUT when Redis does not answer a command in time', async () => {
    const client = new Redis(t.server.url, { maxRetriesPerRequest: null, commandTimeout: 100 });
    client.on('error', () => undefined);
    const slow = new VoltageRedis(client, { outboxMaxMB: 1 });
    try {
      await slow.ping();
      await t.raw.call('CLIENT', 'PAUSE', '400', 'ALL');
      const e = await redisErrorOf(slow.actors.report('a/1', { status: 'running' }));
      expectCode(e, REDIS_ERROR_CODES.timeout);
      expect(e.message).toMatch(/^actor_report: /);
      expectCode(await redisErrorOf(slow.ping()), REDIS_ERROR_CODES.timeout);
      await sleep(500); // the pause is over
    } finally {
      await slow.close();
    }
  });

  it('is REDIS_TIMEOUT when Redis is not reachable within the time given at start', async () => {
    const client = openRedis('redis://127.0.0.1:1', quietLog, 'unreachable');
    try {
      expectCode(await redisErrorOf(readyWithin(client, 'redis://127.0.0.1:1', 200)), REDIS_ERROR_CODES.timeout);
    } finally {
      client.disconnect();
    }
  });
});

describe('a Function that refuses its arguments', () => {
  it('is a RedisFunctionError, REDIS_FUNCTION, naming the Function, and writes nothing', async () => {
    await t.bus.core.loadLibrary();
    const e = await redisErrorOf(t.bus.telemetry.modelSet('site', 1, [{ name: '', value: 1, quality: 'good' }]));
    expect(e).toBeInstanceOf(RedisFunctionError);
    expectCode(e, REDIS_ERROR_CODES.function);
    expect(e.message).toMatch(/^model_set: .*empty name/);
    expect(await t.raw.exists(KEYS.model('site'))).toBe(0);
  });
});
