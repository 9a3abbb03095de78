/**
 * How a cloud link ends, against a real mosquitto (private, free port) and a
 * private Redis: a graceful stop with PUBACKs in flight waits for them,
 * acknowledges their entries and says `offline`, so the next start resends
 * nothing; a runtime killed with kill -9 is declared `offline` by the broker
 * (the Last Will) within its keepalive × 1.5 (mosquitto's bound for a client
 * gone silent; a killed process's socket is closed by the kernel, so the will
 * comes at once).
 */
import { describe, expect, it } from 'vitest';
import { once } from 'node:events';
import { createServer, connect as tcpConnect, type Socket } from 'node:net';
import { loadConfig } from '../../runtime/config/load.js';
import { freePort } from '../../runtime/redisServer.js';
import { startRuntime } from '../../runtime/runtime.js';
import { spawnMosquitto, type Mosquitto } from '../helpers/mosquitto.js';
import { checkOrder, COUNTER_SITE, dataSeqs, watchBroker } from '../helpers/mqttWatch.js';
import { eventually, quietLog, sleep, writeSite } from '../helpers/servers.js';
import { privateRedisSuite } from '../helpers/suite.js';
import { spawnRuntime } from '../faults/site.js';

const t = privateRedisSuite();

/** A broker of the test's own, stopped after it. */
async function testBroker(): Promise<Mosquitto> {
  const b = await spawnMosquitto();
  t.cleanups.push(() => b.stop());
  return b;
}

/**
 * A TCP proxy to the broker that holds every byte the broker sends for `delayMs` (a far broker: PUBACKs late),
 * and refuses connections until it is opened.
 */
async function slowAnswers(target: number, delayMs: number): Promise<{ url: string; open(): void }> {
  const port = await freePort();
  const sockets = new Set<Socket>();
  let open = false;
  const server = createServer((client) => {
    if (!open) return client.destroy();
    const up = tcpConnect(target, '127.0.0.1');
    sockets.add(client).add(up);
    client.on('data', (b) => up.write(b));
    up.on('data', (b) => setTimeout(() => client.writable && client.write(b), delayMs));
    const end = () => {
      client.destroy();
      up.destroy();
    };
    client.on('close', end).on('error', end);
    up.on('close', () => setTimeout(end, delayMs)).on('error', end);
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
  t.cleanups.push(
    () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  );
  return {
    url: `mqtt://127.0.0.1:${port}`,
    open: () => {
      open = true;
    },
  };
}

const cloud = (url: string, extra = '') => `cloud:
  links:
    - id: main
      url: "${url}"
      reconnect: { minBackoffMs: 200, maxBackoffMs: 1000 }
${extra}`;

describe('how a cloud link ends', () => {
  it('a graceful stop in the middle of a drain (a window of 10, PUBACKs 100 ms late): the batch is finished, acknowledged, offline said, and the next start resends nothing', async () => {
    const broker = await testBroker();
    const w = await watchBroker(t.cleanups, broker.url, 'voltage/site/#');
    const proxy = await slowAnswers(broker.port, 100);
    const cfg = loadConfig(writeSite({ 'site.yaml': COUNTER_SITE, 'cloud.yaml': cloud(proxy.url, '      inflight: 10\n') }));
    t.running = await startRuntime(cfg, { redisUrl: t.server.url, log: quietLog });
    // A backlog of ~40 polls while the broker cannot be reached, then a drain of 10 round trips of 100 ms a window.
    await sleep(1_600);
    proxy.open();
    await eventually(() => dataSeqs(w.got).length > 0, 5_000);
    expect(await t.raw.hlen('cloud:main:inflight')).toBeGreaterThan(0);
    await t.running.stop();
    t.running = undefined;
    expect(await t.raw.hgetall('cloud:main:inflight')).toEqual({});
    expect((await t.bus.telemetry.outboxStats()).groups.find((g) => g.name === 'cloud:main')?.pending).toBe(0);
    const lastSeq = Number(await t.raw.get('cloud:main:seq'));
    expect(lastSeq).toBeGreaterThan(30);
    await eventually(() => Math.max(...dataSeqs(w.got)) >= lastSeq, 5_000);
    expect(checkOrder(dataSeqs(w.got))).toEqual({ unique: lastSeq, duplicates: 0 });
    await eventually(() => w.got.filter((m) => m.topic === 'voltage/site/status').at(-1)?.body.status === 'offline', 3_000);
    // The next start numbers on from there and sends nothing twice.
    t.running = await startRuntime(cfg, { redisUrl: t.server.url, log: quietLog });
    await eventually(() => Math.max(...dataSeqs(w.got)) >= lastSeq + 10, 10_000);
    expect(checkOrder(dataSeqs(w.got)).duplicates).toBe(0);
  }, 30_000);

  it('the runtime killed with kill -9: the broker publishes the Last Will, the retained offline status, within keepalive × 1.5 (+ slack)', async () => {
    const broker = await testBroker();
    const keepaliveS = 2;
    const w = await watchBroker(t.cleanups, broker.url, 'voltage/site/status');
    const proc = spawnRuntime(t, writeSite({ 'site.yaml': COUNTER_SITE, 'cloud.yaml': cloud(broker.url, `      keepaliveS: ${keepaliveS}\n`) }));
    const status = () => w.got.at(-1)?.body;
    await eventually(() => status()?.status === 'online', 20_000);
    const n = w.got.length;
    const killedAt = Date.now();
    proc.kill('SIGKILL');
    await once(proc, 'exit');
    await eventually(() => w.got.length > n, keepaliveS * 1_500 + 3_000);
    const tookMs = Date.now() - killedAt;
    // The will as configured: no timestamp (it was written at connect), retained for whoever subscribes later.
    expect(w.got.slice(n).map(({ topic, body }) => ({ topic, body }))).toEqual([{ topic: 'voltage/site/status', body: { status: 'offline' } }]);
    expect(tookMs).toBeLessThanOrEqual(keepaliveS * 1_500 + 3_000);
    const late = await watchBroker(t.cleanups, broker.url, 'voltage/site/status');
    expect((await eventually(() => late.got[0])).body).toEqual({ status: 'offline' });
  }, 40_000);
});
