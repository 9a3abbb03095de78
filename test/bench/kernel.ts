/**
 * Kernel benchmark: virtual channels → c2m → model hashes → model actors'
 * calculations, with the real `voltage start` in its own process and a
 * private redis-server.
 *
 * Workload: C channels × P points (every point changes every poll, deadband 0),
 * one model per channel mapping all its points, with 2 calculations each.
 * Latency: from the poll's generation timestamp to the moment a subscriber
 * sees the model update that c2m publishes right after writing the model hash
 * (so it includes the hash write and one pub/sub hop).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { spawnRedis } from '../../runtime/redisServer.js';
import { cpuPercent, cpuSample, percentile, rssMb } from './procstat.js';

export interface Step { readonly channels: number; readonly points: number; readonly pollMs: number }

export interface StepResult {
  readonly offered: number;
  readonly delivered: number;
  readonly p50: number;
  readonly p99: number;
  readonly calcP50: number;
  readonly calcP99: number;
  readonly runtimeCpu: number;
  readonly redisCpu: number;
  readonly runtimeRss: number;
  readonly redisRss: number;
}

export function siteFiles(step: Step): Record<string, string> {
  const header = 'type,id,name,sim.kind,sim.amplitude,sim.offset,sim.periodMs,sim.phase\n';
  const rows: string[] = [];
  for (let i = 1; i <= step.points; i++) rows.push(`m,${i},p${i},sine,100,0,60000,${((i / step.points) * 6.28).toFixed(4)}`);
  const csv = header + rows.join('\n') + '\n';
  const channels: string[] = [];
  const models: string[] = [];
  for (let c = 0; c < step.channels; c++) {
    channels.push(`  - { id: ch${c}, protocol: virtual, pollMs: ${step.pollMs}, pointsFile: points.csv }`);
    models.push(`  - { id: m${c}, template: device, channel: ch${c} }`);
  }
  const measurements = Array.from({ length: step.points }, (_, i) => `      p${i + 1}: {}`).join('\n');
  return {
    'runtime.yaml': 'runtime:\n  site: bench\n  redis: { historyMaxLen: 2000, cloudMaxLen: 2000 }\n  log: { level: warn }\n',
    'channels.yaml': `channels:\n${channels.join('\n')}\n`,
    'models.yaml': `templates:\n  device:\n    measurements:\n${measurements}\n    calculations:\n      sum3: { expr: "p1 + p2 + p3" }\n      ratio: { expr: "p2 != 0 ? p1 / p2 : 0" }\nmodels:\n${models.join('\n')}\n`,
    'points.csv': csv,
  };
}

export async function runStep(step: Step, opts: { warmupMs: number; measureMs: number }): Promise<StepResult> {
  const dir = mkdtempSync(join(tmpdir(), 'voltage-bench-'));
  for (const [name, text] of Object.entries(siteFiles(step))) writeFileSync(join(dir, name), text);
  const redis = await spawnRedis();
  const sub = new Redis(redis.url);
  const runtime = spawn('./runtime/bin/voltage.js', ['start', '--config', dir], {
    env: { ...process.env, REDIS_URL: redis.url, LOG_FORMAT: 'json' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  try {
    const lat: number[] = [];
    const calcLat: number[] = [];
    let points = 0;
    let measuring = false;
    sub.on('pmessage', (_p: string, _ch: string, msg: string) => {
      if (!measuring) return;
      const now = Date.now();
      const m = JSON.parse(msg) as { ts: number; src: string; v: Record<string, number> };
      if (m.src === 'c2m') {
        lat.push(now - m.ts);
        points += Object.keys(m.v).length;
      } else {
        calcLat.push(now - m.ts);
      }
    });
    await sub.psubscribe('modsrv:*:update');
    const started = Date.now();
    // Wait for the tree to run, then warm up.
    for (;;) {
      if (Date.now() - started > 60_000) throw new Error('runtime did not start within 60 s');
      if (runtime.exitCode !== null) throw new Error(`runtime exited with ${runtime.exitCode}`);
      const probe = new Redis(redis.url);
      const st = await probe.hget('actor:root', 'status').finally(() => probe.disconnect());
      if (st === 'running') break;
      await new Promise((r) => setTimeout(r, 200));
    }
    await new Promise((r) => setTimeout(r, opts.warmupMs));
    const rt0 = cpuSample(runtime.pid!);
    const rd0 = cpuSample(redis.process.pid!);
    const t0 = performance.now();
    measuring = true;
    await new Promise((r) => setTimeout(r, opts.measureMs));
    measuring = false;
    const seconds = (performance.now() - t0) / 1000;
    const rt1 = cpuSample(runtime.pid!);
    const rd1 = cpuSample(redis.process.pid!);
    lat.sort((a, b) => a - b);
    calcLat.sort((a, b) => a - b);
    return {
      offered: (step.channels * step.points * 1000) / step.pollMs,
      delivered: points / seconds,
      p50: percentile(lat, 50),
      p99: percentile(lat, 99),
      calcP50: percentile(calcLat, 50),
      calcP99: percentile(calcLat, 99),
      runtimeCpu: cpuPercent(rt0, rt1),
      redisCpu: cpuPercent(rd0, rd1),
      runtimeRss: rssMb(runtime.pid!),
      redisRss: rssMb(redis.process.pid!),
    };
  } finally {
    runtime.kill('SIGTERM');
    await new Promise((r) => runtime.once('exit', r));
    sub.disconnect();
    await redis.stop();
  }
}

export function formatRow(step: Step, r: StepResult): string {
  const f = (n: number, d = 0) => (Number.isFinite(n) ? n.toFixed(d) : '—');
  return `| ${step.channels} × ${step.points} @ ${step.pollMs} ms | ${f(r.offered)} | ${f(r.delivered)} | ${f(r.p50)} / ${f(r.p99)} | ${f(r.calcP50)} / ${f(r.calcP99)} | ${f(r.runtimeCpu)} % | ${f(r.redisCpu)} % | ${f(r.runtimeRss)} MB | ${f(r.redisRss)} MB |`;
}

export const HEADER = '| workload (channels × points @ poll) | offered points/s | delivered points/s | gen→model hash p50 / p99 (ms) | gen→calculated p50 / p99 (ms) | runtime CPU | Redis CPU | runtime RSS | Redis RSS |\n|---|---|---|---|---|---|---|---|---|';
