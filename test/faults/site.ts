/**
 * What every fault test of the matrix shares: one small site (a virtual
 * channel polled every 50 ms with a counter and a setpoint, a model mapped
 * onto it, the gateway on a free port), and `inventory`, what the runtime owns
 * in Redis at a moment — the things each test says are kept or lost.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Redis } from 'ioredis';
import { loadConfig } from '../../runtime/config/load.js';
import type { SiteConfig } from '../../runtime/config/site.js';
import { pino } from 'pino';
import type { Logger } from '../../runtime/logger.js';
import { startRuntime, type RunningRuntime } from '../../runtime/runtime.js';
import { afterAll, beforeAll } from 'vitest';
import { eventually, quietLog, usePrivateRedis, writeSite } from '../helpers/servers.js';
import type { SuiteContext } from '../helpers/suite.js';

export const TOKEN = 'fault-admin-token';

export const SITE_YAML = `gateway:
  port: 0
channels:
  - id: v1
    protocol: virtual
    pollMs: 50
    points:
      - { type: m, id: 1, sim: { kind: counter, start: 0, step: 1 } }
      - { type: a, id: 1, min: 0, max: 100 }
models:
  - id: inv
    measurements: { n: {} }
    controls: { limit: {} }
    calculations: { twice: { expr: "n * 2" } }
    mapping: { n: "v1:m:1", limit: "v1:a:1" }
`;

export function faultSite(yaml = SITE_YAML): SiteConfig {
  return loadConfig(writeSite({ 'site.yaml': yaml }));
}

/** A logger that keeps its lines (info and above), for a test to count what was said. */
export function capturedLog(): { log: Logger; lines: Array<{ msg: string; level: number }> } {
  const lines: Array<{ msg: string; level: number }> = [];
  const log = pino(
    { level: 'info' },
    {
      write: (s: string) => {
        lines.push(JSON.parse(s) as { msg: string; level: number });
      },
    },
  );
  return { log, lines };
}

export async function startFaultRuntime(redisUrl: string, site = faultSite(), log: Logger = quietLog): Promise<{ rt: RunningRuntime; base: string }> {
  const rt = await startRuntime(site, { redisUrl, log, heartbeatMs: 500, gatewayTokens: [{ name: 'fault', role: 'admin', token: TOKEN }] });
  const port = await eventually(() => rt.gatewayPort());
  return { rt, base: `http://127.0.0.1:${port}` };
}

/** One HTTP request with the admin token; the body parsed when it is JSON. */
export async function api(base: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: any; ms: number }> {
  const started = Date.now();
  const r = await fetch(base + path, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await r.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: r.status, body: parsed, ms: Date.now() - started };
}

/** What the runtime owns in Redis now. */
export interface Inventory {
  functions: boolean;
  site: boolean;
  mappingC2m: number;
  mappingM2c: number;
  modelValue: number | undefined;
  channelValue: number | undefined;
  actors: number;
  commandGroup: boolean;
}

export async function inventory(raw: Redis): Promise<Inventory> {
  const libs = (await raw.call('FUNCTION', 'LIST')) as unknown[];
  let commandGroup = false;
  try {
    const groups = (await raw.xinfo('GROUPS', 'cmd:v1')) as unknown[][];
    commandGroup = groups.some((g) => g.includes('channel'));
  } catch {
    /* no stream */
  }
  const num = (v: string | null) => (v === null ? undefined : Number(v));
  return {
    functions: libs.length > 0,
    site: (await raw.exists('site:config')) === 1,
    mappingC2m: await raw.hlen('mapping:c2m'),
    mappingM2c: await raw.hlen('mapping:m2c'),
    modelValue: num(await raw.hget('modsrv:inv:measurement', 'n')),
    channelValue: num(await raw.hget('comsrv:v1:m', '1')),
    actors: await raw.scard('actors'),
    commandGroup,
  };
}

/** Everything the runtime owns is there: functions, site, both mappings, values, the actor tree, the command group. */
export function complete(i: Inventory, actors: number): boolean {
  return (
    i.functions &&
    i.site &&
    i.mappingC2m === 1 &&
    i.mappingM2c === 1 &&
    i.modelValue !== undefined &&
    i.channelValue !== undefined &&
    i.actors >= actors &&
    i.commandGroup
  );
}

/** A Modbus TCP channel `mb` on `port` (the simulator, or a proxy in front of it), with short timeouts and backoffs: its YAML list item. */
export function modbusFaultChannel(port: number): string {
  return `  - id: mb
    protocol: modbus-tcp
    host: 127.0.0.1
    port: ${port}
    pollMs: 100
    timeoutMs: 150
    retries: 0
    deviceBackoff: { minBackoffMs: 300, maxBackoffMs: 600, randomFactor: 0, resetBackoffAfterMs: 60000 }
    reconnect: { minBackoffMs: 100, maxBackoffMs: 400, randomFactor: 0, resetBackoffAfterMs: 1000 }
    points:
      - { type: m, id: 1, modbus: { unit: 1, fn: 3, address: 0 }, sim: { kind: counter, start: 0, step: 1, max: 60000 } }
`;
}

/** A site of that one channel. */
export function modbusFaultSite(port: number): SiteConfig {
  return faultSite(`channels:\n${modbusFaultChannel(port)}`);
}

/**
 * A private Redis and the fault site's runtime for one test file: started (and
 * its five actors reported) before the file's tests, stopped after them.
 * `base` is the gateway's URL (a test that restarts the gateway may move it).
 */
export function useFaultRuntime(): { readonly t: ReturnType<typeof usePrivateRedis>; rt: RunningRuntime; base: string } {
  const f = { t: usePrivateRedis() } as { t: ReturnType<typeof usePrivateRedis>; rt: RunningRuntime; base: string };
  beforeAll(async () => {
    ({ rt: f.rt, base: f.base } = await startFaultRuntime(f.t.server.url));
    await eventually(async () => complete(await inventory(f.t.raw), 5));
  });
  afterAll(async () => {
    await f.rt.stop();
  });
  return f;
}

/** `voltage start` on the site in `dir` as a child process of the test (to be killed with SIGKILL); killed after the test in any case. */
export function spawnRuntime(t: Pick<SuiteContext, 'server' | 'cleanups'>, dir: string): ChildProcess {
  const proc = spawn(process.execPath, ['runtime/bin/voltage.js', 'start', '--config', dir], {
    env: { ...process.env, REDIS_URL: t.server.url, LOG_FORMAT: 'json' },
    stdio: 'ignore',
  });
  t.cleanups.push(() => {
    proc.kill('SIGKILL');
  });
  return proc;
}
