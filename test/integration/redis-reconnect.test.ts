/**
 * The connections after Redis restarted: a reconnect listener (it reads what
 * it missed, as the gateway's feed and the alarms do) runs once the commands
 * connection is ready as well, even when that one fails fast and comes back
 * after the subscriber; and the reconnection attempts, logged at first, are
 * then said about every 10 s rather than at each attempt.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { OutboxConsumer } from '../../actors/outbox/consumer.js';
import { logsAttempt, openRedis, whenReady } from '../../runtime/redis/connect.js';
import { VoltageRedis } from '../../runtime/redis/voltageRedis.js';
import { eventually, quietLog, sleep, spawnRedis, type RedisServer } from '../helpers/servers.js';

let server: RedisServer;
afterAll(async () => {
  await server.stop();
});

describe('reconnecting', () => {
  it('a reconnect listener runs once the fail-fast commands connection is ready too, and can read', async () => {
    server = await spawnRedis();
    const client = openRedis(server.url, quietLog, 'test', { failFast: true });
    const redis = new VoltageRedis(client, { outboxMaxMB: 1 }, { log: quietLog });
    const subs = redis.subscriber();
    await whenReady(client);
    await subs.on('x', () => undefined);
    const reads: Array<string | null> = [];
    const failures: unknown[] = [];
    subs.onReconnect(() => {
      client.get('k').then(
        (v) => reads.push(v),
        (e: unknown) => failures.push(e),
      );
    });
    // The commands connection is held back (attempts 1.5 s apart): it is ready again well after the subscriber.
    client.options.retryStrategy = () => 1_500;
    server.process.kill('SIGKILL');
    await sleep(200);
    server = await spawnRedis({ port: server.port });
    await eventually(() => reads.length + failures.length > 0, 10_000);
    expect(failures).toEqual([]);
    expect(reads).toEqual([null]);
    await subs.close();
    await redis.close();
  });

  it('an outbox consumer making its group again and again (each reconnect does) adds no listener to its connection', async () => {
    const client = openRedis(server.url, quietLog, 'test');
    await whenReady(client);
    const consumer = new OutboxConsumer(new VoltageRedis(client, { outboxMaxMB: 1 }), 'outbox-test', 'g', 'c');
    await consumer.ensureGroup();
    const counts = () => ['close', 'end', 'ready'].map((e) => client.listenerCount(e));
    const after1 = counts();
    for (let i = 0; i < 20; i++) await consumer.ensureGroup();
    expect(counts()).toEqual(after1);
    expect(await client.xinfo('GROUPS', 'outbox-test')).toHaveLength(1);
    client.disconnect();
  });

  it('logs every attempt while the delay grows, then one attempt in 10', () => {
    const logged = Array.from({ length: 40 }, (_, i) => i + 1).filter(logsAttempt);
    expect(logged).toEqual([1, 2, 3, 4, 5, 10, 20, 30, 40]);
  });
});
