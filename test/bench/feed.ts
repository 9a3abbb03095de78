/**
 * Feed benchmark (the live path, as integrators compare it with Node-RED):
 * D Modbus TCP devices × 100 holding registers read every 100 ms, every
 * register changing every tick, served by `voltage sim` in its own process;
 * the real `voltage start` (runtime + gateway process) on a private Redis; one
 * WebSocket client subscribed to every channel. It prints the pipeline from the
 * device's response (the values' timestamp, taken when the reply arrives) to the
 * client receiving them, CPU of each process and of the whole tree, the tree's
 * RSS, Redis used_memory at the start and the end, and Redis time per c2m point
 * (FCALL microseconds over points written), and how often each process's main thread was woken
 * (context switches: at these rates the CPU goes per wake-up more than per point).
 *
 * BENCH_CPU_PROF=<dir>: the runtime and its gateway process write CPU profiles there when they stop.
 * BENCH_FEED_GROUP_POINTS=<n>: the site's runtime.pollGroupPoints (default 300), to weigh phases against latency.
 * BENCH_FEED_IDLE_GROUP=1: an outbox consumer group that never reads (a history database or cloud
 * broker down for the whole run), so that c2m writes the outbox and it runs into its bound
 * (`BENCH_FEED_OUTBOX_MB`, default the runtime's 256); Redis used_memory is then printed every 30 s
 * of the measured window, to show it flat at the bound (issue 18: a 10-minute run, BENCH_FEED_MS=600000).
 *
 * `root` runs another checkout's bin (BENCH_BASELINE=/path/to/old/checkout), so
 * that the figures before a change come from the same run on the same machine.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import WebSocket from 'ws';
import { sha256 } from '../../runtime/gateway/http.js';
import { freePort, spawnRedis } from '../../runtime/redisServer.js';
import { channelCounters, f, runtimeArgs, type Windows } from './harness.js';
import { modbusFiles } from './modbus.js';
import { cpuPercent, cpuSample, hostSample, ownCpuSample, percentile, rssMb, stealPercent, wakeups } from './procstat.js';

const TOKEN = 'bench-token';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Microseconds Redis spent in FCALL so far, from INFO commandstats. */
async function fcallUsec(redis: Redis): Promise<number> {
  const info = await redis.info('commandstats');
  return Number(/cmdstat_fcall:calls=\d+,usec=(\d+)/.exec(info)?.[1] ?? 0);
}

async function usedMemoryMb(redis: Redis): Promise<number> {
  const info = await redis.info('memory');
  return Number(/used_memory:(\d+)/.exec(info)?.[1] ?? Number.NaN) / 2 ** 20;
}

/** Points written through c2m so far, from the gateway's /metrics (the runtime's counter). */
async function pointsWritten(base: string): Promise<number> {
  const r = await fetch(`http://${base}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
  return Number(/^voltage_points_total (\d+)/m.exec(await r.text())?.[1] ?? Number.NaN);
}

export async function feedRow(devices: number, windows: Windows, root = '.', label = 'this checkout'): Promise<string> {
  const files = await modbusFiles(devices, 100);
  const port = await freePort();
  files['gateway.yaml'] =
    `gateway:\n  port: ${port}\n  rateLimit: { perSecond: 100000, burst: 100000 }\n  tokens:\n    - { name: bench, role: admin, sha256: ${sha256(TOKEN)} }\n`;
  const dir = mkdtempSync(join(tmpdir(), 'voltage-feed-bench-'));
  const idleGroup = process.env.BENCH_FEED_IDLE_GROUP === '1';
  const outboxMb = process.env.BENCH_FEED_OUTBOX_MB;
  if (outboxMb) files['runtime.yaml'] = `${files['runtime.yaml']}  redis:\n    outboxMaxMB: ${Number(outboxMb)}\n`;
  const groupPoints = process.env.BENCH_FEED_GROUP_POINTS;
  if (groupPoints) files['runtime.yaml'] = `${files['runtime.yaml']}  pollGroupPoints: ${Number(groupPoints)}\n`;
  for (const [n, t] of Object.entries(files)) writeFileSync(join(dir, n), t);
  const redis = await spawnRedis();
  const probe = new Redis(redis.url);
  // A group outside the site's names is left alone by the runtime (runtime/actorKind.ts syncOutboxGroups).
  if (idleGroup) await probe.xgroup('CREATE', 'outbox', 'bench-idle', '$', 'MKSTREAM');
  const env = { ...process.env, REDIS_URL: redis.url, LOG_FORMAT: 'json' };
  const sim = spawn('./runtime/bin/voltage.js', ['sim', '--config', dir], { cwd: root, env, stdio: ['ignore', 'ignore', 'inherit'] });
  await sleep(1_500);
  const prof = process.env.BENCH_CPU_PROF;
  const rt = spawn(process.execPath, [...runtimeArgs(prof ? ['--cpu-prof', `--cpu-prof-dir=${prof}`] : [], root), 'start', '--config', dir], {
    cwd: root,
    env: prof ? { ...env, VOLTAGE_GATEWAY_CPU_PROF: prof } : env,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const base = `127.0.0.1:${port}`;
  let ws: WebSocket | undefined;
  try {
    for (let i = 0; ; i++) {
      if (rt.exitCode !== null) throw new Error(`runtime exited with ${rt.exitCode}`);
      if (i > 600) throw new Error('the gateway did not answer within 60 s');
      if (
        await fetch(`http://${base}/health`).then(
          (r) => r.ok,
          () => false,
        )
      )
        break;
      await sleep(100);
    }
    const lat: number[] = [];
    let values = 0;
    let measuring = false;
    ws = new WebSocket(`ws://${base}/ws?token=${TOKEN}`);
    ws.on('message', (data: Buffer) => {
      if (!measuring) return;
      const now = Date.now();
      const m = JSON.parse(data.toString()) as { ts?: number; snapshot?: boolean; values?: Record<string, unknown> };
      if (m.snapshot || typeof m.ts !== 'number' || !m.values) return;
      lat.push(now - m.ts);
      values += Object.keys(m.values).length;
    });
    ws.on('error', () => undefined);
    await new Promise<void>((res, rej) => {
      ws!.once('open', () => res());
      ws!.once('error', rej);
    });
    ws.send(JSON.stringify({ op: 'subscribe', topics: ['channel/*'] }));
    await sleep(windows.warmupMs);
    const mem0 = await usedMemoryMb(probe);
    const us0 = await fcallUsec(probe);
    const pts0 = await pointsWritten(base);
    const missed0 = (await channelCounters(probe)).missed;
    // The gateway's process, as its actor records it (0: unknown, its column then reads 0).
    const gwPid = Number((JSON.parse((await probe.hget('actor:gateway', 'context')) ?? '{}') as { pid?: number }).pid ?? 0);
    const woken = () => [wakeups(rt.pid!), gwPid ? wakeups(gwPid) : 0, wakeups(redis.process.pid!)];
    const w0 = woken();
    const own0 = ownCpuSample(rt.pid!);
    const c0 = [cpuSample(rt.pid!), cpuSample(redis.process.pid!), cpuSample(sim.pid!)];
    const h0 = hostSample();
    const t0 = performance.now();
    measuring = true;
    if (idleGroup) {
      const samples: string[] = [];
      for (let t = 0; t < windows.measureMs; t += 30_000) {
        await sleep(Math.min(30_000, windows.measureMs - t));
        const stats = await probe.hmget('stats:outbox', 'bytes', 'dropped');
        samples.push(
          `${f(Math.min(windows.measureMs, t + 30_000) / 1000)} s: ${f(await usedMemoryMb(probe), 1)} MB (outbox ${f(Number(stats[0] ?? 0) / 2 ** 20, 1)} MB, dropped ${stats[1] ?? 0})`,
        );
      }
      console.log(`# ${devices} × 100 (${label}), idle outbox group, Redis used_memory: ${samples.join('; ')}`);
    } else await sleep(windows.measureMs);
    measuring = false;
    const seconds = (performance.now() - t0) / 1000;
    const c1 = [cpuSample(rt.pid!), cpuSample(redis.process.pid!), cpuSample(sim.pid!)];
    const ownCpu = cpuPercent(own0, ownCpuSample(rt.pid!));
    const wakes = woken().map((w, i) => f((w - w0[i]!) / seconds));
    const steal = stealPercent(h0, hostSample());
    const us1 = await fcallUsec(probe);
    const pts1 = await pointsWritten(base);
    const mem1 = await usedMemoryMb(probe);
    await sleep(1_100); // the channels report their counters once a second
    const missed = (await channelCounters(probe)).missed - missed0;
    const [rtCpu, redisCpu, simCpu] = c0.map((a, i) => cpuPercent(a, c1[i]!)) as [number, number, number];
    const rss = rssMb(rt.pid!) + rssMb(redis.process.pid!);
    lat.sort((a, b) => a - b);
    const offered = devices * 100 * 10;
    const nsPerPoint = ((us1 - us0) * 1000) / Math.max(1, pts1 - pts0);
    return `| ${devices} × 100 @ 100 ms | ${label} | ${f(offered)} | ${f(values / seconds)} | ${f(percentile(lat, 50), 1)} / ${f(percentile(lat, 99), 1)} | ${f(ownCpu)} + ${f(rtCpu - ownCpu)} = ${f(rtCpu)} % | ${f(redisCpu)} % | ${f(rtCpu + redisCpu)} % | ${f(simCpu)} % | ${f(rss)} MB | ${f(mem0, 1)} → ${f(mem1, 1)} MB | ${f(nsPerPoint)} ns | ${wakes.join(' / ')} | ${missed} | ${f(steal, 1)} % |`;
  } finally {
    ws?.terminate();
    rt.kill('SIGTERM');
    if (rt.exitCode === null) await new Promise((r) => rt.once('exit', r));
    sim.kill('SIGTERM');
    if (sim.exitCode === null) await new Promise((r) => sim.once('exit', r));
    probe.disconnect();
    await redis.stop();
  }
}

export const FEED_HEADER =
  '| devices × registers @ poll | build | offered values/s | values/s received by the client | device reply → client p50 / p99 (ms) | runtime + gateway CPU = both | Redis CPU | tree CPU (without the simulator) | simulator CPU | tree RSS (runtime, gateway, Redis) | Redis used_memory start → end | Redis time per c2m point | wake-ups/s runtime / gateway / Redis (main threads) | missed polls | host steal |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|';
