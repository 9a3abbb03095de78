/**
 * Cloud benchmark: the real `voltage start` (its own process, a private
 * redis-server) uplinking over MQTT at QoS 1 to a private mosquitto (no
 * persistence: its disk is not what is measured). A subscriber in this process
 * (rawSubscriber.ts: a plain socket, no JSON.parse) reads every message at QoS 1 straight from the broker; the link reaches the
 * broker through a TCP relay in this process, which the outage cuts (the
 * broker and the subscriber stay up, so what the subscriber misses is what
 * the link lost).
 *
 * Workload: C virtual channels × P points, every point changing every poll,
 * one model per channel (one message per poll). Rows:
 * - online: messages/s and points/s delivered, poll (the message's ts) →
 *   subscriber p50/p99, CPU and RSS;
 * - drain: the relay cut for the outage, then back: the backlog plus what
 *   keeps coming, at the link's full speed (drainRatePerS high): the uplink's
 *   throughput; lost (seqs never seen) and duplicates counted over the whole run.
 * - resend (BENCH_CLOUD_RESEND=N, this checkout only): N messages of the live
 *   ones' shape parked in the link's refused stream (on topics of their own,
 *   `voltage/bench/resent/…`, so the live seqs stay the live ones), then a
 *   request that the link sends them again: the live messages' rate and
 *   latency while it does (against the online row), and how long the N took.
 */
import { execSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { groupBacklog } from '../../runtime/domain/telemetry.js';
import { VoltageRedis } from '../../runtime/redis/voltageRedis.js';
import { KEYS } from '../../runtime/redis/keys.js';
import { ALL_SEQS } from '../../runtime/domain/cloudResend.js';
import { freePort, spawnRedis } from '../../runtime/redisServer.js';
import { spawnMosquitto } from '../helpers/mosquitto.js';
import { f, runtimeArgs } from './harness.js';
import { intField, rawSubscriber, valueCount } from './rawSubscriber.js';
import { cpuPercent, cpuSample, hostSample, othersPercent, ownCpuSample, percentile, rssMb, stealPercent, type CpuSample } from './procstat.js';

/** CPU of a process's main thread alone (the runtime's event loop: GC helpers and libuv's pool are other threads). */
function mainThreadCpuSample(pid: number): CpuSample {
  try {
    const stat = readFileSync(`/proc/${pid}/task/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { at: performance.now(), cpuMs: ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS };
  } catch {
    return { at: performance.now(), cpuMs: 0 };
  }
}

const TICKS = Number(execSync('getconf CLK_TCK').toString().trim()) || 100;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface CloudWorkload {
  readonly channels: number;
  readonly points: number;
  readonly pollMs: number;
  readonly warmupMs: number;
  readonly measureMs: number;
  readonly outageMs: number;
}

/**
 * The link's settings under test: its defaults unless BENCH_CLOUD_INFLIGHT or BENCH_CLOUD_BATCH set them (both
 * builds of a BENCH_BASELINE run get the same YAML, so a before/after pair without them compares the two builds'
 * defaults); BENCH_CLOUD_OUTAGE_MS sets the outage's length.
 */
export function cloudLinkKnobs(): { readonly inflight?: number; readonly batchEntries?: number } {
  const n = (v: string | undefined) => (v ? Number(v) : undefined);
  return { inflight: n(process.env.BENCH_CLOUD_INFLIGHT), batchEntries: n(process.env.BENCH_CLOUD_BATCH) };
}

const outageMsOf = (w: CloudWorkload) => Number(process.env.BENCH_CLOUD_OUTAGE_MS ?? w.outageMs);

const OUTBOX_MAX_MB = 64;

/** BENCH_CLOUD_RESEND: how many parked messages the resend phase sends again (0: no such phase). */
const resendCount = () => Number(process.env.BENCH_CLOUD_RESEND ?? 0);

export const CLOUD_HEADER =
  '| phase | messages/s | points/s | poll→subscriber p50 / p99 (ms) | runtime CPU | runtime RSS | Redis CPU | broker CPU | bench CPU (relay + subscriber) | lost | duplicates |\n|---|---|---|---|---|---|---|---|---|---|---|';

function siteFiles(w: CloudWorkload, brokerUrl: string): Record<string, string> {
  const k = cloudLinkKnobs();
  const header = 'type,id,name,sim.kind,sim.amplitude,sim.offset,sim.periodMs,sim.phase\n';
  const rows = Array.from({ length: w.points }, (_, i) => `m,${i + 1},p${i + 1},sine,100,0,60000,${(((i + 1) / w.points) * 6.28).toFixed(4)}`);
  const channels = Array.from({ length: w.channels }, (_, c) => `  - { id: ch${c}, protocol: virtual, pollMs: ${w.pollMs}, pointsFile: points.csv }`);
  const models = Array.from({ length: w.channels }, (_, c) => `  - { id: m${c}, template: device, channel: ch${c} }`);
  const measurements = Array.from({ length: w.points }, (_, i) => `      p${i + 1}: {}`).join('\n');
  return {
    'runtime.yaml': `runtime:\n  site: bench\n  redis: { outboxMaxMB: ${OUTBOX_MAX_MB} }\n  log: { level: warn }\n`,
    'channels.yaml': `channels:\n${channels.join('\n')}\n`,
    'models.yaml': `templates:\n  device:\n    measurements:\n${measurements}\nmodels:\n${models.join('\n')}\n`,
    'points.csv': `${header + rows.join('\n')}\n`,
    'cloud.yaml': `cloud:\n  links:\n    - { id: bench, url: "${brokerUrl}", drainRatePerS: 1000000,${k.batchEntries ? ` batchEntries: ${k.batchEntries},` : ''}${k.inflight ? ` inflight: ${k.inflight},` : ''} reconnect: { minBackoffMs: 200, maxBackoffMs: 1000 } }\n`,
  };
}

/**
 * Copies `from` to `to`, the chunks read in one turn of the event loop written at once: mosquitto writes a
 * PUBACK per message, and a write per chunk made the relay cost more than the subscriber.
 */
function forward(from: Socket, to: Socket): void {
  let chunks: Buffer[] = [];
  from.on('data', (chunk: Buffer) => {
    if (chunks.length === 0)
      setImmediate(() => {
        const out = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
        chunks = [];
        if (!to.destroyed) to.write(out);
      });
    chunks.push(chunk);
  });
}

/** A TCP relay to the broker that can be cut (every connection closed, new ones refused) and restored on the same port. */
async function relay(targetPort: number): Promise<{ url: string; cut(): Promise<void>; restore(): Promise<void>; close(): Promise<void> }> {
  const port = await freePort();
  const sockets = new Set<Socket>();
  let server: Server | undefined;
  const listen = () =>
    new Promise<void>((resolve) => {
      server = createServer((down) => {
        const up = netConnect(targetPort, '127.0.0.1');
        down.setNoDelay(true);
        up.setNoDelay(true);
        for (const s of [down, up]) {
          sockets.add(s);
          s.on('error', () => undefined);
          s.on('close', () => {
            sockets.delete(s);
            down.destroy();
            up.destroy();
          });
        }
        forward(down, up);
        forward(up, down);
      });
      server.listen(port, '127.0.0.1', () => resolve());
    });
  const cut = async () => {
    const s = server;
    server = undefined;
    for (const sock of sockets) sock.destroy();
    if (s) await new Promise<void>((r) => s.close(() => r()));
  };
  await listen();
  return { url: `mqtt://127.0.0.1:${port}`, cut, restore: listen, close: cut };
}

interface Window {
  msgs: number;
  points: number;
  lat: number[];
  /** When the first message of the window arrived (performance.now()). */
  first: number;
}

/** `root` runs another checkout's bin (BENCH_BASELINE=/path/to/old/checkout, built), `label` names it in the rows. */
export async function cloudRows(w: CloudWorkload, root = '.', label = ''): Promise<string[]> {
  const broker = await spawnMosquitto({ persistence: false, maxInflight: 1000, tcpNoDelay: process.env.BENCH_CLOUD_BROKER_NODELAY === '1' });
  const redis = await spawnRedis();
  const probe = new Redis(redis.url);
  const bus = new VoltageRedis(probe, { outboxMaxMB: OUTBOX_MAX_MB });
  const r = await relay(broker.port);
  const dir = mkdtempSync(join(tmpdir(), 'voltage-bench-cloud-'));
  for (const [name, text] of Object.entries(siteFiles(w, r.url))) writeFileSync(join(dir, name), text);

  const seen = new Uint8Array(10_000_000);
  let duplicates = 0;
  let maxSeq = 0;
  let win: Window | undefined;
  // The measuring subscriber reads seq, ts and the values' count from the payload's bytes (rawSubscriber.ts): with mqtt.js
  // and JSON.parse per message it took a share of the two cores comparable to the link's.
  const SEQ = Buffer.from('"seq":');
  const TS = Buffer.from('"ts":');
  const VALUES = Buffer.from('"values":{');
  const sub = await rawSubscriber(broker.port, 'bench-watch', 'voltage/bench/data/#', (buf, start, end) => {
    const now = Date.now();
    const seq = intField(buf, start, end, SEQ);
    if (!(seq > 0)) throw new Error(`a message without a seq: ${buf.toString('utf8', start, end)}`);
    if (seen[seq]) duplicates += 1;
    seen[seq] = 1;
    if (seq > maxSeq) maxSeq = seq;
    if (win) {
      if (win.msgs === 0) win.first = performance.now();
      win.msgs += 1;
      win.points += valueCount(buf, start, end, VALUES);
      win.lat.push(now - intField(buf, start, end, TS));
    }
  });

  // The resend's messages arrive on topics of their own: counted here, not in the live seqs.
  const resent = { count: 0, last: 0 };
  const resentSub = await rawSubscriber(broker.port, 'bench-watch-resent', 'voltage/bench/resent/#', () => {
    resent.count += 1;
    resent.last = performance.now();
  });

  // BENCH_RUNTIME_NODE_ARGS: Node flags for the runtime alone (runtimeArgs).
  const runtime = spawn(process.execPath, [...runtimeArgs([], root), 'start', '--config', dir], {
    cwd: root,
    env: { ...process.env, REDIS_URL: redis.url, LOG_FORMAT: 'json' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const samples = () =>
    [
      cpuSample(runtime.pid!),
      cpuSample(redis.process.pid!),
      cpuSample(broker.process.pid!),
      ownCpuSample(process.pid),
      mainThreadCpuSample(runtime.pid!),
    ] as const;
  const row = (phase: string, wd: Window, seconds: number, a: readonly CpuSample[], b: readonly CpuSample[], rss: number, tail: string) => {
    wd.lat.sort((x, y) => x - y);
    return `| ${label}${phase} | ${f(wd.msgs / seconds)} | ${f(wd.points / seconds)} | ${f(percentile(wd.lat, 50))} / ${f(percentile(wd.lat, 99))} | ${f(cpuPercent(a[0]!, b[0]!))} % (main thread ${f(cpuPercent(a[4]!, b[4]!))} %) | ${f(rss)} MB | ${f(cpuPercent(a[1]!, b[1]!))} % | ${f(cpuPercent(a[2]!, b[2]!))} % | ${f(cpuPercent(a[3]!, b[3]!))} % | ${tail} |`;
  };
  // The link's backlog as the product reports it (voltage status, /metrics, the link's lag and bound).
  const lag = async () => {
    const g = (await bus.telemetry.outboxStats()).groups.find((x) => x.name === 'cloud:bench');
    return g ? groupBacklog(g) : Number.POSITIVE_INFINITY;
  };
  /** Parks N messages, asks the link to send them again, and measures the live messages meanwhile. */
  const resendRow = async (wl: CloudWorkload): Promise<string> => {
    const n = resendCount();
    const values = Array.from({ length: wl.points }, (_, i) => `"p${i + 1}":${(i * 1.5).toFixed(6)}`).join(',');
    for (let i = 0; i < n; i += 1_000) {
      const tx = probe.multi();
      for (let k = i; k < Math.min(n, i + 1_000); k++)
        tx.xadd(
          KEYS.cloudRefused('bench'),
          '*',
          'seq',
          String(k + 1),
          'topic',
          `voltage/bench/resent/m${k % wl.channels}`,
          'reason',
          '0x87',
          'payload',
          `{"seq":${k + 1},"ts":${Date.now()},"model":"m${k % wl.channels}","values":{${values}}}`,
        );
      await tx.exec();
    }
    await sleep(1_000);
    const wd: Window = { msgs: 0, points: 0, lat: [], first: 0 };
    win = wd;
    const a = samples();
    const t0 = performance.now();
    const request = await bus.cloud.parked.request('bench', ALL_SEQS, 'bench');
    while (resent.count < n && performance.now() - t0 < 120_000) await sleep(20);
    const tookS = (resent.last - t0) / 1000;
    // At least the online window's length, so that the rates compare.
    while (performance.now() - t0 < wl.measureMs) await sleep(20);
    const b = samples();
    win = undefined;
    const o = await bus.cloud.parked.outcome('bench', request);
    const left = await bus.cloud.parked.count('bench');
    return row(
      `during a resend of ${f(n)} parked messages (all arrived in ${f(tookS, 2)} s: ${f(resent.count / tookS)} messages/s; outcome ${o?.state} resent ${o?.resent}, ${left} left parked)`,
      wd,
      (performance.now() - t0) / 1000,
      a,
      b,
      rssMb(runtime.pid!),
      '— | —',
    );
  };
  try {
    for (let t0 = Date.now(); (await probe.hget('actor:root', 'status')) !== 'running'; ) {
      if (Date.now() - t0 > 60_000 || runtime.exitCode !== null) throw new Error('the runtime did not start');
      await sleep(200);
    }
    await sleep(w.warmupMs);
    // Online.
    win = { msgs: 0, points: 0, lat: [], first: 0 };
    let a = samples();
    const t = performance.now();
    await sleep(w.measureMs);
    let b = samples();
    const online = row('online', win, (performance.now() - t) / 1000, a, b, rssMb(runtime.pid!), '— | —');
    win = undefined;
    const resendRows = root === '.' && resendCount() > 0 ? [await resendRow(w)] : [];
    // Outage: the relay cut; the backlog grows in Redis.
    await r.cut();
    await sleep(outageMsOf(w));
    const backlog = await lag();
    await r.restore();
    // The drain is timed from its first message (the link's reconnect backoff is not the uplink's speed).
    win = { msgs: 0, points: 0, lat: [], first: 0 };
    const drainStart = Date.now();
    while (win.msgs === 0) {
      if (Date.now() - drainStart > 30_000) throw new Error('the link did not come back');
      await sleep(1);
    }
    a = samples();
    const host0 = hostSample();
    while ((await lag()) > w.channels * 2) {
      if (Date.now() - drainStart > 10 * outageMsOf(w) + 30_000) throw new Error('the backlog did not drain');
      await sleep(50);
    }
    b = samples();
    const host1 = hostSample();
    // What else ran on the two cores meanwhile: a drain slowed by other work shows it here.
    const measured = [0, 1, 2].map((i) => cpuPercent(a[i]!, b[i]!));
    const others = `others ${f(othersPercent(host0, host1, measured))} %, steal ${f(stealPercent(host0, host1))} % of the machine`;
    const drainS = (performance.now() - win.first) / 1000;
    const drained = win;
    win = undefined;
    const rss = rssMb(runtime.pid!);
    await sleep(2_000);
    runtime.kill('SIGTERM');
    await new Promise((res) => runtime.once('exit', res));
    await sleep(500);
    const lastSeq = Number(await probe.get('cloud:bench:seq'));
    // The seqs of entries still pending at the stop (recorded in cloud:bench:inflight, "first count") are the next
    // start's to send first, with those seqs: kept, not lost.
    const kept = new Uint8Array(lastSeq + 1);
    for (const rec of Object.values(await probe.hgetall('cloud:bench:inflight'))) {
      const [first, count] = rec.split(' ').map(Number) as [number, number];
      for (let s = first; s < first + count && s <= lastSeq; s++) kept[s] = 1;
    }
    let lost = 0;
    let keptUnseen = 0;
    for (let s = 1; s <= lastSeq; s++) if (!seen[s]) kept[s] ? (keptUnseen += 1) : (lost += 1);
    const drain = row(
      `drain after a ${outageMsOf(w) / 1000} s outage (backlog ${f(backlog)} messages, caught up in ${f(drainS, 1)} s; ${others})`,
      drained,
      drainS,
      a,
      b,
      rss,
      `${lost} of ${lastSeq}${keptUnseen > 0 ? ` (${keptUnseen} more pending at the stop, kept for the next start)` : ''} | ${duplicates}`,
    );
    return [online, ...resendRows, drain];
  } finally {
    if (runtime.exitCode === null) {
      runtime.kill('SIGTERM');
      await new Promise((res) => runtime.once('exit', res));
    }
    sub.close();
    resentSub.close();
    await r.close();
    probe.disconnect();
    await redis.stop();
    await broker.stop();
  }
}

export function cloudWorkload(w: CloudWorkload): string {
  const rate = (w.channels * 1000) / w.pollMs;
  const k = cloudLinkKnobs();
  return `${w.channels} virtual channels × ${w.points} points @ ${w.pollMs} ms (${f(rate)} messages/s, ${f(rate * w.points)} points/s offered), QoS 1, mosquitto without persistence, one QoS 1 subscriber; the link's inflight ${k.inflight ?? 'its default'}, batchEntries ${k.batchEntries ?? 'its default'}, drainRatePerS unbounded, outage ${outageMsOf(w) / 1000} s`;
}
