/**
 * Gateway benchmark, against the real `voltage start` (own process, private
 * Redis): REST latency of GET /api/v1/models/{id} at a fixed request rate
 * (autocannon), and WebSocket fan-out — N clients subscribed to every model of
 * a 10k points/s site, delivered messages/s and the latency from the poll that
 * produced a value to the client receiving it (coalescing interval included).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { Redis } from 'ioredis';
import WebSocket from 'ws';
import { sha256 } from '../../runtime/gateway/http.js';
import { freePort, spawnRedis } from '../../runtime/redisServer.js';
import { siteFiles } from './kernel.js';
import { f } from './harness.js';
import { cpuPercent, cpuSample, percentile, rssMb } from './procstat.js';

const TOKEN = 'bench-token';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function withRuntime<T>(site: { channels: number; points: number }, run: (base: string, pid: number) => Promise<T>): Promise<T> {
  const port = await freePort();
  const files = siteFiles({ ...site, pollMs: 1000 });
  files['gateway.yaml'] = `gateway:\n  port: ${port}\n  rateLimit: { perSecond: 100000, burst: 100000 }\n  tokens:\n    - { name: bench, role: admin, sha256: ${sha256(TOKEN)} }\n`;
  const dir = mkdtempSync(join(tmpdir(), 'voltage-gw-bench-'));
  for (const [n, t] of Object.entries(files)) writeFileSync(join(dir, n), t);
  const redis = await spawnRedis();
  const rt = spawn('./runtime/bin/voltage.js', ['start', '--config', dir], { env: { ...process.env, REDIS_URL: redis.url, LOG_FORMAT: 'json' }, stdio: ['ignore', 'ignore', 'inherit'] });
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

export async function restRow(rate: number, seconds: number): Promise<string> {
  return withRuntime({ channels: 10, points: 20 }, async (base, pid) => {
    const c0 = cpuSample(pid);
    const r = await autocannon({
      url: `http://${base}/api/v1/models/m0`, connections: 32, duration: seconds, overallRate: rate,
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    const c1 = cpuSample(pid);
    return `| GET /api/v1/models/{id} (22 values) | ${rate} | ${f(r.requests.average)} | ${r.non2xx} | ${f(r.latency.p50, 1)} / ${f(r.latency.p99, 1)} | ${f(cpuPercent(c0, c1))} % | ${f(rssMb(pid))} MB |`;
  });
}

export async function fanoutRow(clients: number, seconds: number): Promise<string> {
  return withRuntime({ channels: 10, points: 1000 }, async (base, pid) => {
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
    measuring = true;
    await sleep(seconds * 1000);
    measuring = false;
    const c1 = cpuSample(pid);
    for (const ws of sockets) ws.terminate();
    lat.sort((a, b) => a - b);
    return `| ${clients} | ${f(messages / seconds)} | ${f(percentile(lat, 50))} / ${f(percentile(lat, 99))} | ${f(cpuPercent(c0, c1))} % | ${f(rssMb(pid))} MB |`;
  });
}

export const REST_HEADER = '| request | offered requests/s | served requests/s | non-2xx | latency p50 / p99 (ms) | runtime CPU | runtime RSS |\n|---|---|---|---|---|---|---|';
export const FANOUT_HEADER = '| clients (each on model/*, 10 models × 1,000 values, 10k points/s) | delivered messages/s | poll → client p50 / p99 (ms) | runtime CPU | runtime RSS |\n|---|---|---|---|---|';
