/**
 * The gateway's process under its actor: a port that is taken fails the
 * actor with the reason (the rest of the site runs on), and once the port is
 * free the supervisor's next restart serves; stopping the runtime ends the
 * process.
 */
import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../runtime/config/load.js';
import { freePort } from '../../runtime/redisServer.js';
import { startRuntime } from '../../runtime/runtime.js';
import { eventually, pidAlive, quietLog, writeSite } from '../helpers/servers.js';
import { privateRedisSuite } from '../helpers/suite.js';

const t = privateRedisSuite();

describe('the gateway process', () => {
  it('fails on a port in use, with the reason, and serves once the port is free; ends with the runtime', { timeout: 30_000 }, async () => {
    const port = await freePort();
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(port, '127.0.0.1', () => r()));
    const site = loadConfig(
      writeSite({
        'site.yaml': `gateway: { port: ${port}, tokens: [] }
channels:
  - id: v1
    protocol: virtual
    pollMs: 50
    points: [{ type: m, id: 1, name: P, sim: { kind: constant, value: 3 } }]
models:
  - { id: m1, measurements: { P: {} }, mapping: { P: "v1:m:1" } }
`,
      }),
    );
    t.running = await startRuntime(site, { redisUrl: t.server.url, log: quietLog });
    const failed = await eventually(async () => {
      const a = await t.raw.hgetall('actor:gateway');
      return a.restarts && Number(a.restarts) >= 1 ? a : undefined;
    });
    expect(failed.lastError).toMatch(/cannot listen on 127\.0\.0\.1:\d+/);
    // The site runs on meanwhile.
    await eventually(async () => (await t.raw.hget('modsrv:m1:measurement', 'P')) === '3.000000');
    await new Promise<void>((r) => blocker.close(() => r()));
    const health = await eventually(
      async () => {
        const r = await fetch(`http://127.0.0.1:${port}/health`).catch(() => undefined);
        return r?.ok ? ((await r.json()) as { status: string }) : undefined;
      },
      20_000,
      200,
    );
    expect(health.status).toBe('ok');
    const pid = JSON.parse((await t.raw.hget('actor:gateway', 'context')) ?? '{}').pid as number;
    expect(pid).toBeGreaterThan(0);
    await t.running.stop();
    t.running = undefined;
    expect(pidAlive(pid)).toBe(false);
  });
});
