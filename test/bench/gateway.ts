/**
 * Gateway benchmark, against the real `voltage start` (own process, private
 * Redis): REST latency of GET /api/v1/models/{id} at a fixed request rate
 * (an open-loop generator, ./httpload.ts), and WebSocket fan-out — N clients subscribed to every model of
 * a 10k points/s site, delivered messages/s and the latency from the poll that
 * produced a value to the client receiving it (coalescing interval included).
 */
import { fork, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import WebSocket from 'ws';
import { sha256 } from '../../runtime/gateway/http.js';
import { freePort, spawnRedis } from '../../runtime/redisServer.js';
import { siteFiles } from './kernel.js';
import { httpLoad, type LoadResult } from './httpload.js';
import { f } from './harness.js';
import { cpuPercent, cpuSample, hostSample, percentile, rssMb, stealPercent } from './procstat.js';

const TOKEN = 'bench-token';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface BenchSite {
  readonly channels: number;
  readonly points: number;
  readonly pollMs: number;
}

async function withRuntime<T>(site: BenchSite, run: (base: string, pid: number) => Promise<T>): Promise<T> {
  const port = await freePort();
  const files = siteFiles(site);
  files['gateway.yaml'] =
    `gateway:\n  port: ${port}\n  rateLimit: { perSecond: 100000, burst: 100000 }\n  tokens:\n    - { name: bench, role: admin, sha256: ${sha256(TOKEN)} }\n`;
  const dir = mkdtempSync(join(tmpdir(), 'voltage-gw-bench-'));
  for (const [n, t] of Object.entries(files)) writeFileSync(join(dir, n), t);
  const redis = await spawnRedis();
  const rt = spawn('./runtime/bin/voltage.js', ['start', '--config', dir], {
    env: { ...process.env, REDIS_URL: redis.url, LOG_FORMAT: 'json' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const probe = new Redis(redis.url);
  try {
    for (let i = 0; i < 300 && (await probe.hget('actor:gateway', 'status')) !== 'running'; i++) await sleep(100);
    await sleep(2_000);
    return await run(`127.0.0.1:${port}`, rt.pid!);
  } finally {
    rt.kill('SIGTERM');
    await new Promise((r) => rt.once('exit', r));
    probe.disconnect();
    await redis.stop();
  }
}

function restCells(what: string, rate: number, r: LoadResult, steal: number, rss: string, cpu?: string, generatorCpu?: string): string {
  const q = (a: Float64Array, p: number) => f(a[Math.min(a.length - 1, Math.floor((a.length * p) / 100))] ?? Number.NaN, 2);
  return `| ${what} | ${rate} | ${f(r.completed / r.seconds)} | ${r.non2xx + r.errors} | ${q(r.latencies, 50)} / ${q(r.latencies, 99)} | ${q(r.intended, 99)} | ${cpu ?? '—'} | ${generatorCpu ?? '—'} | ${rss} | ${f(steal, 1)} % |`;
}

/** The REST load against a runtime running `site` (by default a light one: 10 channels × 20 points a second). */
export async function restRow(rate: number, seconds: number, site: BenchSite = { channels: 10, points: 20, pollMs: 1000 }): Promise<string> {
  return withRuntime(site, async (base, pid) => {
    const [host, port] = base.split(':') as [string, string];
    const c0 = cpuSample(pid);
    const h0 = hostSample();
    const me0 = process.cpuUsage();
    const r = await httpLoad({
      host,
      port: Number(port),
      path: '/api/v1/models/m0',
      headers: { authorization: `Bearer ${TOKEN}` },
      rate,
      seconds,
      connections: 32,
    });
    const me = process.cpuUsage(me0);
    const c1 = cpuSample(pid);
    const busy = site.channels * site.points * (1000 / site.pollMs);
    const what = `GET /api/v1/models/{id} (22 values), site ${site.channels} × ${site.points} @ ${site.pollMs} ms (${busy / 1000}k points/s)`;
    return restCells(
      what,
      rate,
      r,
      stealPercent(h0, hostSample()),
      `${f(rssMb(pid))} MB`,
      `${f(cpuPercent(c0, c1))} %`,
      `${f(((me.user + me.system) / 1e6 / r.seconds) * 100)} %`,
    );
  });
}

/** The same load against a bare uWS server with a constant answer (test/bench/floorServer.ts). */
export async function restFloorRow(rate: number, seconds: number): Promise<string> {
  const child = fork(fileURLToPath(new URL('./floorServer.ts', import.meta.url)), [], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  try {
    const port = await new Promise<number>((resolve, reject) => {
      child.once('message', (m) => resolve(Number(m)));
      child.once('exit', (code) => reject(new Error(`the floor server exited with ${code}`)));
    });
    const h0 = hostSample();
    const r = await httpLoad({ host: '127.0.0.1', port, path: '/x', headers: {}, rate, seconds, connections: 32 });
    return restCells('floor: a bare uWS server, constant 1 kB answer', rate, r, stealPercent(h0, hostSample()), '—');
  } finally {
    child.kill('SIGTERM');
  }
}

export async function fanoutRow(clients: number, seconds: number): Promise<string> {
  return withRuntime({ channels: 10, points: 1000, pollMs: 1000 }, async (base, pid) => {
    const lat: number[] = [];
    let messages = 0;
    let measuring = false;
    const sockets: WebSocket[] = [];
    for (let i = 0; i < clients; i++) {
      const ws = new WebSocket(`ws://${base}/ws?token=${TOKEN}`);
      ws.on('message', (data: Buffer) => {
        if (!measuring) return;
        // {"topic":"model/m0","ts":1795…,"values":…}: read the time from the head, do not parse 30 kB.
        const head = data.subarray(0, 60).toString();
        const m = /"ts":(\d+)/.exec(head);
        if (!m || head.includes('"snapshot"')) return;
        messages++;
        lat.push(Date.now() - Number(m[1]));
      });
      ws.on('error', () => undefined);
      await new Promise<void>((res) => ws.once('open', () => res()));
      ws.send(JSON.stringify({ op: 'subscribe', topics: ['model/*'] }));
      sockets.push(ws);
    }
    await sleep(3_000);
    const c0 = cpuSample(pid);
    const h0 = hostSample();
    measuring = true;
    await sleep(seconds * 1000);
    measuring = false;
    const c1 = cpuSample(pid);
    const steal = stealPercent(h0, hostSample());
    for (const ws of sockets) ws.terminate();
    lat.sort((a, b) => a - b);
    return `| ${clients} | ${f(messages / seconds)} | ${f(percentile(lat, 50))} / ${f(percentile(lat, 99))} | ${f(cpuPercent(c0, c1))} % | ${f(rssMb(pid))} MB | ${f(steal, 1)} % |`;
  });
}

export const REST_HEADER =
  '| request | offered requests/s | served requests/s | non-2xx or errors | latency p50 / p99 (ms) | p99 from the intended send time (ms) | runtime CPU | load generator CPU | runtime RSS | host steal |\n|---|---|---|---|---|---|---|---|---|---|';
export const FANOUT_HEADER =
  '| clients (each on model/*, 10 models × 1,000 values, 10k points/s) | delivered messages/s | poll → client p50 / p99 (ms) | runtime CPU | runtime RSS | host steal |\n|---|---|---|---|---|---|';
