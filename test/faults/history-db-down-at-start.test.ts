/**
 * Fault: the history database down when the writer starts (nothing answers
 * on its port). Kept: the backlog, in the outbox (50 entries); the writer
 * retries with backoff (it does not fail or restart), and once a
 * VictoriaMetrics answers on that port every value is written, once, and
 * every entry acknowledged. Lost: nothing.
 */
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { createActor } from 'xstate';
import { HistoryWriter } from '../../actors/history/HistoryWriter.js';
import { provideHistoryMachine } from '../../actors/history/HistoryActor.js';
import { freePort } from '../../runtime/redisServer.js';
import { eventually, quietLog, spawnRedis, wrapper, type RedisServer } from '../helpers/servers.js';
import { forceFlush, spawnVictoria, type VictoriaServer } from '../helpers/victoria.js';
import { KEYS } from '../../runtime/redis/keys.js';

let redis: RedisServer;
let vm: VictoriaServer | undefined;

beforeAll(async () => {
  redis = await spawnRedis();
});
afterAll(async () => {
  await vm?.stop();
  if (vm) rmSync(vm.dataDir, { recursive: true, force: true });
  await redis.stop();
});

describe('fault: the history database down at start', () => {
  it('the database down at start: retried with backoff, the backlog kept in the outbox, all of it written once it answers', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const bus = wrapper(redis, { outboxMaxMB: 16 });
    const conn = new Redis(redis.url, { maxRetriesPerRequest: null });
    const raw = new Redis(redis.url, { maxRetriesPerRequest: null });
    // Batches of 4 entries: the backlog is drained in full batches, 3 in flight at a time, acknowledged in order.
    const writer = new HistoryWriter(
      bus.onConnection(conn),
      { backend: 'down', url, batchMaxMs: 50, batchMaxEntries: 4, writesInFlight: 3, timeoutMs: 500 },
      quietLog,
    );
    const actor = createActor(provideHistoryMachine(writer, { minBackoffMs: 100, maxBackoffMs: 300, randomFactor: 0, resetBackoffAfterMs: 0 }, quietLog), {
      input: { backend: 'down' },
    });
    actor.subscribe({ error: () => undefined });
    try {
      actor.start();
      // The group exists at once (Redis is up): c2m keeps what comes meanwhile.
      await eventually(async () => ((await raw.call('XINFO', 'GROUPS', KEYS.outbox)) as unknown[]).length === 1, 5_000);
      const t0 = Date.now() - 60_000;
      for (let i = 0; i < 50; i++) await bus.telemetry.c2m('6001', t0 + i * 100, [{ type: 'm', id: 1, value: i, quality: null }]);
      await eventually(() => actor.getSnapshot().context.attempts >= 3, 10_000, 20);
      expect(actor.getSnapshot().status).toBe('active');
      expect(actor.getSnapshot().context.lastError).toContain(`${url} does not answer /health`);
      expect(await raw.xlen(KEYS.outbox)).toBe(50);

      vm = await spawnVictoria({ port });
      const values = await eventually(
        async () => {
          await forceFlush(vm!.url);
          const sel = encodeURIComponent('voltage_point_value{channel="6001",type="m",point="1"}');
          const text = await (await fetch(`${vm!.url}/api/v1/export?match[]=${sel}`)).text();
          const got =
            text.trim() === ''
              ? []
              : text
                  .trim()
                  .split('\n')
                  .flatMap((l) => (JSON.parse(l) as { values: number[] }).values);
          return got.length >= 50 ? got : undefined;
        },
        20_000,
        200,
      );
      expect([...values].sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => i));
      expect(actor.getSnapshot().value).not.toBe('backoff');
      // Every entry acknowledged, once it was written.
      await eventually(async () => Number(((await raw.xpending(KEYS.outbox, KEYS.historyGroup('down'))) as [number])[0]) === 0, 5_000);
      await eventually(() => actor.getSnapshot().context.entries === 50, 5_000);
    } finally {
      actor.stop();
      conn.disconnect();
      raw.disconnect();
      await bus.close();
    }
  }, 40_000);
});
