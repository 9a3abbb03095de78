/**
 * How a cloud link reaches its broker, against a real mosquitto: MQTT over
 * WebSocket (`ws://`), and a broker that requires a login (`username`, the
 * password from the variable `passwordEnv` names). A wrong password is an
 * outage like any other: the link retries with a growing backoff, says why
 * (its machine state, its lastError, a warning log), keeps its backlog, and
 * once the password is right delivers all of it, seq from 1 without a gap.
 */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../runtime/config/load.js';
import { startRuntime } from '../../runtime/runtime.js';
import { statusReport } from '../../runtime/status.js';
import { cloudYaml } from '../faults/cloud.js';
import { capturedLog } from '../faults/site.js';
import { spawnMosquitto } from '../helpers/mosquitto.js';
import { checkOrder, COUNTER_SITE, dataSeqs, watchBroker } from '../helpers/mqttWatch.js';
import { eventually, quietLog, writeSite } from '../helpers/servers.js';
import { privateRedisSuite } from '../helpers/suite.js';

const t = privateRedisSuite();

const site = (cloud: string) => loadConfig(writeSite({ 'site.yaml': COUNTER_SITE, 'cloud.yaml': cloud }));

/** The link's recorded machine state and context (what `voltage status` and the visualizer read). */
async function linkActor(): Promise<{ state: string; lastError: string | null }> {
  const a = await t.raw.hgetall('actor:cloud/main');
  const ctx = JSON.parse(a.context ?? '{}') as { lastError?: string | null };
  return { state: a.state ?? '', lastError: ctx.lastError ?? null };
}

describe('cloud link: how it reaches the broker', () => {
  it("ws://: a link to mosquitto's websockets listener uplinks in order, seq from 1 without gaps, with its online status", async () => {
    const b = await spawnMosquitto({ websockets: true });
    t.cleanups.push(() => b.stop());
    // The watcher on the plain listener: the same broker, another protocol.
    const w = await watchBroker(t.cleanups, b.url, 'voltage/site/#');
    t.running = await startRuntime(site(cloudYaml(b.wsUrl!)), { redisUrl: t.server.url, log: quietLog });
    await eventually(() => dataSeqs(w.got).length >= 20);
    expect(dataSeqs(w.got)[0]).toBe(1);
    expect(checkOrder(dataSeqs(w.got)).duplicates).toBe(0);
    expect(w.got.find((m) => m.topic === 'voltage/site/status')?.body).toMatchObject({ status: 'online' });
    expect((await linkActor()).state).toContain('online');
  });

  it('a broker that requires a login: a wrong password retries with a growing backoff and says why; the right one delivers the whole backlog', async () => {
    const b = await spawnMosquitto({ users: { edge: 'right-password', watcher: 'watch-password' } });
    t.cleanups.push(() => b.stop());
    const w = await watchBroker(t.cleanups, b.url, 'voltage/site/#', undefined, { username: 'watcher', password: 'watch-password' });
    process.env.VOLTAGE_TEST_MQTT_PASSWORD = 'wrong-password';
    t.cleanups.push(() => delete process.env.VOLTAGE_TEST_MQTT_PASSWORD);
    const { log, lines } = capturedLog();
    t.running = await startRuntime(site(cloudYaml(b.url, '      username: edge\n      passwordEnv: VOLTAGE_TEST_MQTT_PASSWORD\n')), {
      redisUrl: t.server.url,
      log,
    });
    // Logged: each retry with its attempt, its delay and why (reconnect 200..500 ms, up to 20 % longer).
    const retries = await eventually(() => {
      const r = lines.filter((l) => l.msg.startsWith('cloud link: connecting again')) as unknown as Array<{ attempt: number; delayMs: number; err: string }>;
      return r.length >= 3 ? r.slice(0, 3) : undefined;
    }, 8_000);
    expect(retries.map((r) => r.attempt)).toEqual([1, 2, 3]);
    const delays = retries.map((r) => r.delayMs);
    expect(delays[1]).toBeGreaterThan(delays[0]!);
    expect(delays[2]).toBeGreaterThan(delays[1]!);
    expect(Math.max(...delays)).toBeLessThanOrEqual(600);
    for (const r of retries) expect(r.err).toMatch(/Not authorized|Bad username or password/);
    // The machine says why: not online, the broker's refusal as its last error, in `voltage status` too.
    const actor = await linkActor();
    expect(actor.state).not.toContain('online');
    expect(actor.lastError).toMatch(/Not authorized|Bad username or password/);
    expect((await statusReport(t.bus)).text).toMatch(/cloud\/main .*(disconnected|connecting).*last error: .*(Not authorized|Bad username or password)/);
    expect(dataSeqs(w.got)).toEqual([]);
    // The password corrected (read again at each attempt): online, and every poll since the start arrives, in order.
    process.env.VOLTAGE_TEST_MQTT_PASSWORD = 'right-password';
    await eventually(async () => (await linkActor()).state.includes('online'), 5_000);
    const first = await eventually(() => w.got.find((m) => m.topic === 'voltage/site/data/inv'));
    expect(first.body).toMatchObject({ seq: 1, values: { P: 1 } });
    await eventually(() => dataSeqs(w.got).length >= 60, 8_000);
    expect(checkOrder(dataSeqs(w.got)).duplicates).toBe(0);
    const values = w.got.filter((m) => m.topic === 'voltage/site/data/inv').map((m) => (m.body.values as { P: number }).P);
    expect(values).toEqual(values.map((_, i) => i + 1));
  }, 30_000);
});
