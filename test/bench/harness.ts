/**
 * Runs a site with the real `voltage start` in its own process against a
 * private redis-server, optionally beside helper processes (a device
 * simulator), and measures from outside: delivered points/s and the latency
 * from a poll's timestamp to a subscriber seeing the model update that c2m
 * publishes right after writing the model hash; CPU and RSS of each process;
 * polls missed by the channels.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { spawnRedis } from '../../runtime/redisServer.js';
import { cpuPercent, cpuSample, hostSample, percentile, rssMb, stealPercent } from './procstat.js';

export interface Windows {
  readonly warmupMs: number;
  readonly measureMs: number;
}

export interface SiteResult {
  readonly delivered: number;
  readonly p50: number;
  readonly p99: number;
  readonly calcP50: number;
  readonly calcP99: number;
  readonly missedPolls: number;
  /** Poll batches seen by the subscriber per second (one model update per poll). */
  readonly pollsPerSecond: number;
  readonly runtimeCpu: number;
  readonly redisCpu: number;
  readonly helperCpu: number;
  readonly runtimeRss: number;
  readonly redisRss: number;
  /** The runtime's own event-loop delay (p99 / max over its last heartbeat interval). */
  readonly loopDelay: string;
  /** The runtime's own poll start → c2m acknowledged (p50 / p99 over its last heartbeat interval). */
  readonly pollToRedis: string;
  /** CPU time the host took from this VM during the window, in %. */
  readonly steal: number;
}

/** This checkout. */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/**
 * Node's arguments for `voltage` run as `node <these> start …`: the command's own Node flags (read
 * off its first line, `#!/usr/bin/env -S node --flag …`, so that a bench runs the runtime as
 * `voltage start` does), then BENCH_RUNTIME_NODE_ARGS (space-separated Node or V8 flags for the
 * runtime alone, for A/B runs or `--cpu-prof --cpu-prof-dir=/tmp/prof`: Node 20 refuses --cpu-prof
 * in NODE_OPTIONS), then `extra`, then the script. `root`: the checkout whose bin runs (this one,
 * or a BENCH_BASELINE), relative to the current directory.
 */
export function runtimeArgs(extra: readonly string[] = [], root = ROOT): string[] {
  const bin = resolve(root, 'runtime/bin/voltage.js');
  const first = readFileSync(bin, 'utf8').split('\n', 1)[0] ?? '';
  return [...first.split(' ').filter((w) => w.startsWith('--')), ...(process.env.BENCH_RUNTIME_NODE_ARGS ?? '').split(' ').filter(Boolean), ...extra, bin];
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const HEAD = /^\{"ts":(\d+),"src":"(\w+)"/;

/** The number of values in a notification's "v" object (names and numbers hold no comma). */
export function countValues(msg: string): number {
  const start = msg.indexOf('"v":{');
  if (start < 0 || msg.charCodeAt(start + 5) === 0x7d) return 0;
  let n = 1;
  for (let i = start + 5; i < msg.length; i++) {
    const c = msg.charCodeAt(i);
    if (c === 0x7d) break;
    if (c === 0x2c) n++;
  }
  return n;
}

/** Missed polls of all channels, as their actors last reported (at most 1 s old). */
export async function channelCounters(redis: Redis): Promise<{ missed: number }> {
  const ids = (await redis.smembers('actors')).filter((id) => id.startsWith('channel/'));
  let missed = 0;
  for (const id of ids) {
    const c = JSON.parse((await redis.hget(`actor:${id}`, 'context')) ?? '{}') as { missedPolls?: number };
    missed += c.missedPolls ?? 0;
  }
  return { missed };
}

/** A running site: its private Redis, the runtime process, two clients (one free to subscribe), the helper processes. */
export interface SiteRun {
  readonly redis: Awaited<ReturnType<typeof spawnRedis>>;
  readonly runtime: ChildProcess;
  readonly helpers: readonly ChildProcess[];
  /** A connection for subscriptions. */
  readonly sub: Redis;
  /** A connection for commands. */
  readonly probe: Redis;
}

/**
 * Writes the site's files, starts a private redis-server, the helpers and the
 * real `voltage start` in its own process, waits for its root supervisor to
 * run, runs `body`, and stops everything again whatever happens.
 */
export async function withSite<T>(
  files: Readonly<Record<string, string>>,
  body: (run: SiteRun) => Promise<T>,
  helpers: (dir: string) => ChildProcess[] = () => [],
): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'voltage-bench-'));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  const redis = await spawnRedis();
  const sub = new Redis(redis.url);
  const probe = new Redis(redis.url);
  const extra = helpers(dir);
  await sleep(extra.length ? 1_500 : 0);
  // BENCH_CPU_PROF=<dir>: the runtime writes a CPU profile there when it stops.
  const prof = process.env.BENCH_CPU_PROF;
  const runtime = spawn(process.execPath, [...runtimeArgs(prof ? ['--cpu-prof', `--cpu-prof-dir=${prof}`] : []), 'start', '--config', dir], {
    // BENCH_RUNTIME_TRACE=<file>: the runtime's hot-path timeline (runtime/trace.ts), written when it stops.
    env: {
      ...process.env,
      REDIS_URL: redis.url,
      LOG_FORMAT: 'json',
      ...(process.env.BENCH_RUNTIME_TRACE ? { VOLTAGE_TRACE: process.env.BENCH_RUNTIME_TRACE } : {}),
    },
    // BENCH_RUNTIME_STDOUT=<file>: the runtime's stdout (its JSON log, and V8's --trace-gc lines with BENCH_RUNTIME_NODE_ARGS).
    stdio: ['ignore', process.env.BENCH_RUNTIME_STDOUT ? openSync(process.env.BENCH_RUNTIME_STDOUT, 'w') : 'ignore', 'inherit'],
  });
  try {
    const started = Date.now();
    for (;;) {
      if (Date.now() - started > 60_000) throw new Error('runtime did not start within 60 s');
      if (runtime.exitCode !== null) throw new Error(`runtime exited with ${runtime.exitCode}`);
      if ((await probe.hget('actor:root', 'status')) === 'running') break;
      await sleep(200);
    }
    return await body({ redis, runtime, helpers: extra, sub, probe });
  } finally {
    if (runtime.exitCode === null && runtime.signalCode === null) {
      runtime.kill('SIGTERM');
      await new Promise((r) => runtime.once('exit', r));
    }
    for (const p of extra) {
      p.kill('SIGTERM');
      if (p.exitCode === null) await new Promise((r) => p.once('exit', r));
    }
    sub.disconnect();
    probe.disconnect();
    await redis.stop();
  }
}

export async function measureSite(
  files: Readonly<Record<string, string>>,
  windows: Windows,
  helpers: (dir: string) => ChildProcess[] = () => [],
): Promise<SiteResult> {
  return withSite(
    files,
    async ({ redis, runtime, helpers: extra, sub, probe }) => {
      const lat: number[] = [];
      const calcLat: number[] = [];
      let points = 0;
      let measuring = false;
      sub.on('pmessage', (_p: string, _ch: string, msg: string) => {
        if (!measuring) return;
        const now = Date.now();
        // {"ts":…,"src":"c2m","v":{…}}: read the head and count the values' separators rather
        // than parse 1,000 values (the measuring process's own work shows in the tail it measures).
        // (c2m concatenates its JSON in that order; model_set's cjson has no fixed key order.)
        const m = HEAD.exec(msg);
        if (m && m[2] === 'c2m') {
          lat.push(now - Number(m[1]));
          points += countValues(msg);
        } else {
          calcLat.push(now - (JSON.parse(msg) as { ts: number }).ts);
        }
      });
      await sub.psubscribe('modsrv:*:update');
      await sleep(windows.warmupMs);
      const before = await channelCounters(probe);
      const rt0 = cpuSample(runtime.pid!);
      const rd0 = cpuSample(redis.process.pid!);
      const hp0 = extra.map((p) => cpuSample(p.pid!));
      const host0 = hostSample();
      const t0 = performance.now();
      measuring = true;
      await sleep(windows.measureMs);
      measuring = false;
      const seconds = (performance.now() - t0) / 1000;
      const rt1 = cpuSample(runtime.pid!);
      const rd1 = cpuSample(redis.process.pid!);
      const hp1 = extra.map((p) => cpuSample(p.pid!));
      const steal = stealPercent(host0, hostSample());
      await sleep(1_200); // let the registry's throttled reports catch up
      const after = await channelCounters(probe);
      const [lp99, lmax, pp50, pp99] = await probe.hmget('actor:root', 'loopDelayP99Ms', 'loopDelayMaxMs', 'pollToRedisP50Ms', 'pollToRedisP99Ms');
      lat.sort((a, b) => a - b);
      calcLat.sort((a, b) => a - b);
      return {
        delivered: points / seconds,
        p50: percentile(lat, 50),
        p99: percentile(lat, 99),
        calcP50: percentile(calcLat, 50),
        calcP99: percentile(calcLat, 99),
        missedPolls: after.missed - before.missed,
        pollsPerSecond: lat.length / seconds,
        runtimeCpu: cpuPercent(rt0, rt1),
        redisCpu: cpuPercent(rd0, rd1),
        helperCpu: hp0.reduce((s, a, i) => s + cpuPercent(a, hp1[i]!), 0),
        runtimeRss: rssMb(runtime.pid!),
        redisRss: rssMb(redis.process.pid!),
        loopDelay: `${lp99 ?? '?'} / ${lmax ?? '?'} ms`,
        pollToRedis: `${pp50 ?? '?'} / ${pp99 ?? '?'}`,
        steal,
      };
    },
    helpers,
  );
}

export const f = (n: number, d = 0): string => (Number.isFinite(n) ? n.toFixed(d) : '—');
