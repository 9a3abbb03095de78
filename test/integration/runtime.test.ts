/**
 * The kernel end to end against a private redis-server: supervised virtual
 * channels and models from a YAML site, restarts with backoff, escalation,
 * shutdown, and Redis coming late or going away.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { loadConfig } from '../../runtime/config/load.js';
import type { SiteConfig } from '../../runtime/config/site.js';
import { freePort } from '../../runtime/redisServer.js';
import { startRuntime, type RunningRuntime } from '../../runtime/runtime.js';
import { statusReport } from '../../runtime/status.js';
import { eventually, quietLog, rawClient, sleep, spawnRedis, wrapper, writeSite, type RedisServer } from '../helpers/servers.js';

const FIXTURE = 'test/fixtures/flaky-site';
let server: RedisServer;
let raw: Redis;
let running: RunningRuntime | undefined;

function site(patch: (s: SiteConfig) => SiteConfig = (s) => s): SiteConfig {
  return patch(loadConfig(FIXTURE));
}

async function startSite(yaml: string): Promise<void> {
  running = await startRuntime(loadConfig(writeSite({ 'site.yaml': yaml })), { redisUrl: server.url, log: quietLog });
}

beforeAll(async () => {
  server = await spawnRedis();
  raw = rawClient(server);
});
afterEach(async () => {
  await running?.stop();
  running = undefined;
  await raw.flushall();
});
afterAll(async () => {
  raw.disconnect();
  await server.stop();
});

describe('kernel: supervised actors from config to Redis', () => {
  it('a failing virtual channel is restarted with backoff while its siblings keep updating', async () => {
    running = await startRuntime(site(), { redisUrl: server.url, log: quietLog });
    const started = Date.now();
    await eventually(async () => Number((await raw.hget('actor:channel/flaky', 'restarts')) ?? 0) >= 3, 10_000);
    const elapsed = Date.now() - started;
    // Restarts wait their backoff (100, 200, 400 ms with no jitter) after 3 polls of 50 ms each.
    expect(elapsed).toBeGreaterThanOrEqual(100 + 200 + 3 * 150);
    const counterBefore = Number(await raw.hget('comsrv:good1:m', '1'));
    await sleep(500);
    const counterAfter = Number(await raw.hget('comsrv:good1:m', '1'));
    // 50 ms polls: ~10 polls in 500 ms; the sibling's failures do not slow it.
    expect(counterAfter - counterBefore).toBeGreaterThanOrEqual(7);
    const flaky = await raw.hgetall('actor:channel/flaky');
    expect(flaky.lastError).toContain('crashed after 3 polls');
    expect(['backoff', 'running', 'failed']).toContain(flaky.status);
    expect(await raw.hget('actor:channel/good1', 'restarts')).toBe('0');
    // Garbage readings are stored with quality bad, never crash anything by themselves.
    const q = await eventually(async () => {
      const all = await raw.hgetall('comsrv:flaky:m:q');
      return Object.values(all).includes('bad') ? all : undefined;
    });
    expect(Object.values(q).every((x) => x === 'good' || x === 'bad')).toBe(true);
  });

  it('models recalculate from channel notifications, across models, in dependency order', async () => {
    running = await startRuntime(site(), { redisUrl: server.url, log: quietLog });
    const check = await eventually(async () => {
      const [meter, s] = await Promise.all([raw.hgetall('modsrv:meter:measurement'), raw.hgetall('modsrv:site:measurement')]);
      const n = Number(meter.n);
      if (!(n > 5) || s.total === undefined) return undefined;
      return { meter, s };
    });
    expect(Number(check.meter.power)).toBeCloseTo(230 * Number(check.meter.n), -3);
    await eventually(async () => {
      const [meter, s] = await Promise.all([raw.hgetall('modsrv:meter:measurement'), raw.hgetall('modsrv:site:measurement')]);
      const expected = Number(meter.power) + Number(meter.double_n);
      return Math.abs(Number(s.total) - expected) < 1e-6 && Number(meter.double_n) === 2 * Number(meter.n);
    });
    expect(await raw.hget('modsrv:site:measurement:q', 'total')).toBe('good');
  });

  it('escalates when intensity is exceeded: the root gives up and names the child', async () => {
    running = await startRuntime(
      site((s) => ({
        ...s,
        runtime: { ...s.runtime, supervisor: { ...s.runtime.supervisor, intensity: 0 }, channels: { ...s.runtime.channels, intensity: 1 } },
      })),
      { redisUrl: server.url, log: quietLog },
    );
    const reason = await Promise.race([running.exited, sleep(10_000).then(() => undefined)]);
    expect(reason?.kind).toBe('error');
    const message = reason?.kind === 'error' ? (reason.error as Error).message : '';
    expect(message).toContain("supervisor 'root': child 'channels' exceeded the restart intensity of 0");
    expect(message).toContain("child 'channel/flaky' exceeded the restart intensity of 1");
    await eventually(async () => (await raw.hget('actor:root', 'status')) === 'escalated');
    // Everything below the root was stopped: no channel writes any more.
    const before = await raw.hget('comsrv:good1:m', '1');
    await sleep(200);
    expect(await raw.hget('comsrv:good1:m', '1')).toBe(before);
  });

  it('stops cleanly: every actor stopped, channels before models, no writes after', async () => {
    running = await startRuntime(site(), { redisUrl: server.url, log: quietLog });
    await eventually(async () => Number(await raw.hget('comsrv:good1:m', '1')) > 3);
    await running.stop();
    running = undefined;
    const actors = await wrapper(server).actors.list();
    const byId = new Map(actors.map((a) => [a.id, a]));
    for (const a of actors) expect(a.status, a.id).toBe('stopped');
    expect(Number(byId.get('channels')!.updatedAt)).toBeLessThanOrEqual(Number(byId.get('models')!.updatedAt));
    const before = await raw.hget('comsrv:good1:m', '1');
    await sleep(200);
    expect(await raw.hget('comsrv:good1:m', '1')).toBe(before);
    const report = await statusReport(wrapper(server));
    expect(report.runtimeUp).toBe(false);
    expect(report.text).toContain('runtime: DOWN');
    expect(report.text).toMatch(/└─ channel\/flaky\s+stopped/);
  });

  it('starts when Redis comes up after the runtime, and says it is retrying', async () => {
    const port = await freePort();
    const lines: string[] = [];
    const log = quietLog.child({});
    const spy = Object.assign(Object.create(log) as typeof log, {
      warn: (...args: unknown[]) => {
        lines.push(String(args[1] ?? args[0]));
      },
      child: () => spy,
    });
    const starting = startRuntime(site(), { redisUrl: `redis://127.0.0.1:${port}`, log: spy });
    await sleep(700);
    expect(lines.some((l) => l.includes(`Redis at redis://127.0.0.1:${port} is unreachable; retrying in`))).toBe(true);
    const late = await spawnRedis({ port });
    try {
      running = await starting;
      const c = rawClient(late);
      await eventually(async () => Number(await c.hget('comsrv:good1:m', '1')) > 2);
      c.disconnect();
      await running.stop();
      running = undefined;
    } finally {
      await late.stop();
    }
  });

  it('keeps running when Redis goes away and comes back empty: writes resume, functions and mapping reloaded', async () => {
    const own = await spawnRedis();
    const port = own.port;
    running = await startRuntime(site(), { redisUrl: own.url, log: quietLog });
    let c = rawClient(own);
    await eventually(async () => Number(await c.hget('modsrv:meter:measurement', 'n')) > 2);
    c.disconnect();
    await own.stop();
    await sleep(600);
    const again = await spawnRedis({ port });
    try {
      c = rawClient(again);
      // The new Redis is empty: no library, no mapping. The runtime restores both and writes resume.
      const n = await eventually(async () => Number(await c.hget('modsrv:meter:measurement', 'n')) || undefined, 15_000);
      expect(n).toBeGreaterThan(0);
      expect(await c.hget('mapping:c2m', 'good1:m:1')).toBe('meter:n');
      await eventually(async () => (await c.hget('actor:root', 'status')) === 'running');
      await eventually(async () => (await c.hget('modsrv:site:measurement', 'total')) !== null);
      expect(await c.hget('actor:channel/good1', 'restarts')).toBe('0');
      c.disconnect();
      await running.stop();
      running = undefined;
    } finally {
      await again.stop();
    }
  });
});

describe('report by exception', () => {
  it('a point within its deadband is not re-sent until its integrity period; a moving point is sent every poll', async () => {
    await startSite(`channels:
  - id: rbe
    protocol: virtual
    pollMs: 40
    integrityMs: 600
    points:
      - { type: m, id: 1, deadband: 0.5, sim: { kind: constant, value: 10 } }
      - { type: m, id: 2, deadband: 0, sim: { kind: counter, start: 0, step: 1 } }
      - { type: m, id: 3, deadband: 5, sim: { kind: counter, start: 0, step: 1 } }
`);
    const first = await eventually(async () => Number(await raw.hget('comsrv:rbe:m:ts', '1')) || undefined);
    await sleep(300);
    const ts = await raw.hgetall('comsrv:rbe:m:ts');
    const vals = await raw.hgetall('comsrv:rbe:m');
    expect(Number(ts['1'])).toBe(first);
    expect(Number(ts['2'])).toBeGreaterThan(first + 200);
    // Point 3 moves by 1 a poll: sent when it has moved more than 5 since the last sent value.
    expect(Number(vals['2']) - Number(vals['3'])).toBeLessThanOrEqual(6);
    expect(Number(vals['2']) - Number(vals['3'])).toBeGreaterThanOrEqual(0);
    const refreshed = await eventually(async () => {
      const t = Number(await raw.hget('comsrv:rbe:m:ts', '1'));
      return t > first ? t : undefined;
    }, 3_000);
    expect(refreshed - first).toBeGreaterThanOrEqual(600);
  });
});

describe('what a channel sends again', () => {
  it('writes a quality only when it changes, and everything again once Redis lost its data', async () => {
    await startSite(`channels:
  - id: rbe2
    protocol: virtual
    pollMs: 40
    integrityMs: 600000
    points:
      - { type: m, id: 1, deadband: 0.5, sim: { kind: constant, value: 10 } }
      - { type: m, id: 2, deadband: 0, sim: { kind: counter, start: 0, step: 1 } }
`);
    await eventually(async () => (await raw.hget('comsrv:rbe2:m:q', '2')) === 'good');
    // Point 2 is sent every poll, its quality (unchanged) is not: a field removed stays removed.
    await raw.hdel('comsrv:rbe2:m:q', '2');
    const ts = Number(await raw.hget('comsrv:rbe2:m:ts', '2'));
    await eventually(async () => Number(await raw.hget('comsrv:rbe2:m:ts', '2')) > ts + 200);
    expect(await raw.hget('comsrv:rbe2:m:q', '2')).toBeNull();
    // Redis loses everything (library included): the next polls restore every point, the quiet one and the qualities too.
    await raw.flushall();
    await raw.call('FUNCTION', 'FLUSH');
    await eventually(async () => (await raw.hget('comsrv:rbe2:m', '1')) === '10.000000', 5_000);
    expect(await raw.hgetall('comsrv:rbe2:m:q')).toEqual({ 1: 'good', 2: 'good' });
  });
});
