/**
 * History benchmark: a site of virtual channels with every point historized
 * (the kernel workload: every point changes every poll, each mapped onto a
 * model value) against a private VictoriaMetrics. A row writes each point
 * twice (its raw channel series and its model value: the history section's
 * defaults) or, `once`, as its model value only (`channels: false` in the
 * history section: no raw channel series).
 * Measures the writer's throughput, the lag from a poll to its value being
 * queryable (p50/p99), the runtime's and VictoriaMetrics' CPU and RSS, the
 * drain after an outage of the database, and the query latency over the
 * tiers (a year of 1 h tier data and a day of 1 m tier data backfilled
 * directly for 10 series). Also the outbox's bytes per entry, which the
 * README's backlog hours are computed from.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { HistoryQueries } from '../../actors/history/query.js';
import { spawnRedis } from '../../runtime/redisServer.js';
import { spawnVictoria, type VictoriaServer } from '../../runtime/victoriaServer.js';
import { f, runtimeArgs } from './harness.js';
import { siteFiles, type Step } from './kernel.js';
import { cpuPercent, cpuSample, percentile, rssMb } from './procstat.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export const HISTORY_HEADER =
  '| site (channels × points @ poll, each point kept) | offered points/s | written samples/s | poll→queryable p50 / p99 (ms) | runtime CPU / RSS | VictoriaMetrics CPU / RSS | outage | drain (× real time) | bytes / outbox entry (points) |\n|---|---|---|---|---|---|---|---|---|';
export const QUERY_HEADER = '| query (from the tiers) | tier | values | p50 (ms) | p99 (ms) |\n|---|---|---|---|---|';

interface Opts {
  readonly step: Step;
  /** Each point kept once, as its model value (history `channels: false`); else twice (channel and model series). */
  readonly once: boolean;
  readonly measureMs: number;
  readonly outageMs: number;
}

/** How a row names its site: `100 × 1000 @ 1000 ms`, with `, once (model values)` for a once row. */
function siteLabel(o: Opts): string {
  return `${o.step.channels} × ${o.step.points} @ ${o.step.pollMs} ms, ${o.once ? 'once (model values only)' : 'twice (channel + model)'}`;
}

async function writerContext(redis: Redis): Promise<{ samples: number; entries: number }> {
  const c = JSON.parse((await redis.hget('actor:history/bench', 'context')) ?? '{}') as { samples?: number; entries?: number };
  return { samples: c.samples ?? 0, entries: c.entries ?? 0 };
}

/** The writer's consumer group as XINFO GROUPS gives it (name, pending, lag, last-delivered-id, …). */
async function groupInfo(redis: Redis): Promise<Record<string, unknown> | undefined> {
  const groups = (await redis.call('XINFO', 'GROUPS', 'outbox')) as unknown[][];
  return groups
    .map((x) => Object.fromEntries(Array.from({ length: x.length / 2 }, (_, i) => [x[2 * i], x[2 * i + 1]])))
    .find((x) => x.name === 'history:bench');
}

/**
 * How far the writer is behind, in poll time: from the oldest entry it has not acknowledged
 * (pending, else the first it has not read) to the newest, by their stream ids (c2m's XADD at
 * the poll). Not XINFO GROUPS' lag: it counts entries added since the group's last read, those
 * the outbox's bound dropped unread too, and keeps counting them after the drain (~5,200 for a
 * group that had read the whole stream, XLEN 65, with the kernel bench's 64 MB bound), which made
 * the round 13 drain look stuck at 118k samples/s.
 */
async function behindMs(redis: Redis): Promise<number> {
  // The group, its pending list and the newest entry at one instant (a MULTI): read apart, a batch acknowledged in between
  // left an empty pending list beside a group that had not read the rest, and the writer looked caught up.
  const [info, pend, newest] = (
    (await redis.multi().xinfo('GROUPS', 'outbox').xpending('outbox', 'history:bench').xrevrange('outbox', '+', '-', 'COUNT', 1).exec()) ?? []
  ).map(([e, r]) => {
    if (e) throw e;
    return r;
  }) as [unknown[][], [number, string | null], Array<[string, string[]]>];
  const g = info
    .map((x) => Object.fromEntries(Array.from({ length: x.length / 2 }, (_, i) => [x[2 * i], x[2 * i + 1]])))
    .find((x) => x.name === 'history:bench');
  const last = newest[0]?.[0];
  if (!g || !last) return g ? 0 : Number.NaN;
  let oldest: string | undefined;
  if (pend[0] > 0 && pend[1]) oldest = pend[1];
  else if (g['last-delivered-id'] !== last) oldest = (await redis.xrange('outbox', `(${String(g['last-delivered-id'])}`, '+', 'COUNT', 1))[0]?.[0] ?? last;
  return oldest ? Number(last.split('-')[0]) - Number(oldest.split('-')[0]) : 0;
}

/** Entries the writer's group has not read or not acknowledged (from XINFO GROUPS' lag: right while the writer is caught up or stopped, not after a drain; see behindMs). */
async function backlog(redis: Redis): Promise<number> {
  const g = await groupInfo(redis);
  if (!g) return Number.NaN;
  const lag = Number(g.lag ?? Number.NaN);
  if (Number.isFinite(lag)) return lag + Number(g.pending);
  const last = (await redis.xrevrange('outbox', '+', '-', 'COUNT', 1))[0]?.[0];
  return g['last-delivered-id'] === last ? Number(g.pending) : Number.POSITIVE_INFINITY;
}

/** The newest stored timestamp of one point (its channel series, or its model value in a once row), or 0. */
async function newestTs(url: string, once: boolean): Promise<number> {
  const series = once ? 'voltage_model_value{model="m0",name="p1"}' : 'voltage_point_value{channel="ch0",type="m",point="1"}';
  const qs = new URLSearchParams({ query: `timestamp(${series})`, nocache: '1' });
  try {
    const r = (await (await fetch(`${url}/api/v1/query?${qs}`)).json()) as { data?: { result?: Array<{ value: [number, string] }> } };
    return Math.round(Number(r.data?.result?.[0]?.value[1] ?? 0) * 1_000);
  } catch {
    return 0;
  }
}

/** The writer has caught up after an outage when it is at most this far behind (behindMs). */
const CAUGHT_UP_MS = 1_000;

/** A row, or the row's failure (a runtime that ran out of heap, say) in its place. */
export async function historyRow(o: Opts): Promise<string> {
  try {
    return await measureHistory(o);
  } catch (e) {
    const offered = (o.step.channels * o.step.points * 1_000) / o.step.pollMs;
    return `| ${siteLabel(o)} | ${f(offered)} | failed: ${e instanceof Error ? e.message : String(e)} | | | | | | |`;
  }
}

async function measureHistory(o: Opts): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'voltage-bench-history-'));
  const vmDir = mkdtempSync(join(tmpdir(), 'voltage-bench-vm-'));
  const redis = await spawnRedis();
  let vm: VictoriaServer = await spawnVictoria({ dataDir: vmDir, retentionPeriod: '2y' });
  const files = {
    ...siteFiles(o.step),
    // The outbox at its default bound (256 MB): the kernel's 64 MB holds ~38 s of this site's polls (8.7 kB an entry, 200
    // entries/s), so a 60 s outage dropped its oldest ~22 s and the drain had ~38 s of polls to write, not 60 (rounds 11–13).
    'runtime.yaml': `runtime:\n  site: bench\n  redis: { outboxMaxMB: ${Number(process.env.BENCH_HISTORY_OUTBOX_MB ?? 256)} }\n  log: { level: warn }\n`,
    // BENCH_HISTORY_DRAIN_RATE: the writer's drainEntriesPerSecond (5,000 here: no limit at 200 entries/s arriving).
    'history.yaml': `history:\n  backends: [ { id: bench, url: "${vm.url}" } ]\n  drainEntriesPerSecond: ${Number(process.env.BENCH_HISTORY_DRAIN_RATE ?? 5_000)}\n${o.once ? '  channels: false\n' : ''}`,
  };
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  const probe = new Redis(redis.url);
  // BENCH_RUNTIME_NODE_ARGS: Node flags for the runtime alone (runtimeArgs).
  const runtime = spawn(process.execPath, [...runtimeArgs(), 'start', '--config', dir], {
    env: { ...process.env, REDIS_URL: redis.url, LOG_FORMAT: 'json' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  try {
    const started = Date.now();
    while ((await probe.hget('actor:root', 'status')) !== 'running') {
      if (Date.now() - started > 60_000 || runtime.exitCode !== null) throw new Error('runtime did not start');
      await sleep(200);
    }
    // Warm-up: at 100k points/s the writer starts seconds behind (the polls of the start-up, and VictoriaMetrics
    // registering 100k to 200k new series), so the window starts once it has caught up and the probe's series is
    // queryable (at most BENCH_HISTORY_WARMUP_MAX_S, default 60 s), and 2 s later.
    const warmMaxMs = Number(process.env.BENCH_HISTORY_WARMUP_MAX_S ?? 60) * 1_000;
    const warm0 = Date.now();
    while (Date.now() - warm0 < warmMaxMs) {
      if ((await backlog(probe)) <= o.step.channels * 2 && (await newestTs(vm.url, o.once)) > Date.now() - 5_000) break;
      await sleep(500);
    }
    console.error(`history: warm-up ${((Date.now() - warm0) / 1_000).toFixed(1)} s (writer caught up, the probe's series queryable)`);
    await sleep(2_000);
    // Throughput, lag and CPU over the window.
    const w0 = await writerContext(probe);
    const rt0 = cpuSample(runtime.pid!);
    const vm0 = cpuSample(vm.process.pid!);
    const t0 = Date.now();
    const lags: number[] = [];
    let seen = 0;
    // BENCH_HISTORY_TRACE=1: the writer's samples, its backlog and the probe's lag once a second, on stderr.
    const trace = process.env.BENCH_HISTORY_TRACE === '1';
    let traced = t0;
    let tracedSamples = w0.samples;
    while (Date.now() - t0 < o.measureMs) {
      const ts = await newestTs(vm.url, o.once);
      if (ts > seen) {
        if (seen > 0) lags.push(Date.now() - ts);
        seen = ts;
      }
      if (trace && Date.now() - traced >= 1_000) {
        const w = await writerContext(probe);
        console.error(
          `history trace +${((Date.now() - t0) / 1_000).toFixed(1)} s: ${f(((w.samples - tracedSamples) * 1_000) / (Date.now() - traced))} samples/s, backlog ${await backlog(probe)} entries, newest ${seen > 0 ? Date.now() - seen : '—'} ms old`,
        );
        traced = Date.now();
        tracedSamples = w.samples;
      }
      await sleep(50);
    }
    const seconds = (Date.now() - t0) / 1_000;
    const w1 = await writerContext(probe);
    const rtCpu = cpuPercent(rt0, cpuSample(runtime.pid!));
    const vmCpu = cpuPercent(vm0, cpuSample(vm.process.pid!));
    const rtRss = rssMb(runtime.pid!);
    const vmRss = rssMb(vm.process.pid!);
    // Bytes an outbox entry, as c2m counts them (points text + channel id + 32).
    const recent = (await probe.xrevrange('outbox', '+', '-', 'COUNT', 100)) as Array<[string, string[]]>;
    let bytes = 0;
    let points = 0;
    for (const [, fields] of recent) {
      const m = new Map<string, string>();
      for (let i = 0; i + 1 < fields.length; i += 2) m.set(fields[i]!, fields[i + 1]!);
      const p = m.get('p') ?? '';
      bytes += Buffer.byteLength(p) + Buffer.byteLength(m.get('id') ?? '') + 32;
      points += p.split('\n').filter(Boolean).length;
    }
    // The outage: the database stopped, the backlog kept in the outbox, then drained.
    await vm.stop();
    await sleep(o.outageMs);
    if (runtime.exitCode !== null || runtime.signalCode !== null)
      throw new Error(`the runtime exited (${runtime.exitCode ?? runtime.signalCode}) during the outage`);
    const before = await backlog(probe);
    const down = Date.now() - o.outageMs;
    vm = await spawnVictoria({ dataDir: vmDir, port: vm.port, retentionPeriod: '2y' });
    const back = Date.now();
    // The writer notices at its next retry (its backoff, at most 5 s); the drain runs from its first write.
    let first = 0;
    let left = Number.POSITIVE_INFINITY;
    const d0 = (await writerContext(probe)).samples;
    let dFirst = d0;
    // CPU while draining: the runtime, VictoriaMetrics and Redis, from the database's return to the catch-up.
    const cpus = () => [cpuSample(runtime.pid!), cpuSample(vm.process.pid!), cpuSample(redis.process.pid!)] as const;
    const dc0 = cpus();
    let tc = dc0;
    let tracedAt = Date.now();
    let tracedDrained = d0;
    // At 1× real time a drain never ends: the wait is bounded (BENCH_HISTORY_DRAIN_MAX_S, default 3 × the outage).
    const drainMaxMs = Number(process.env.BENCH_HISTORY_DRAIN_MAX_S ?? (3 * o.outageMs) / 1_000) * 1_000;
    while (Date.now() - back < drainMaxMs) {
      if (runtime.exitCode !== null || runtime.signalCode !== null)
        throw new Error(`the runtime exited (${runtime.exitCode ?? runtime.signalCode}) during the drain`);
      const n = await behindMs(probe);
      left = n;
      // The drain starts when the writer is back (it reconnected: rewriting its recent window, then draining), not at its
      // first acknowledged batch, so that the window's rewrite counts as drain time.
      if (first === 0 && /^"(rewriting|draining|writing)"$/.test((await probe.hget('actor:history/bench', 'state')) ?? '')) {
        first = Date.now();
        dFirst = (await writerContext(probe)).samples;
      }
      // Caught up: at most a second's polls not yet acknowledged (a live batch waits up to 200 ms; three batches of a drain span ~1.5 s).
      if (first > 0 && n <= CAUGHT_UP_MS) break;
      if (trace && Date.now() - tracedAt >= 1_000) {
        const w = await writerContext(probe);
        const c = cpus();
        const g = await groupInfo(probe);
        console.error(
          `history drain trace +${((Date.now() - back) / 1_000).toFixed(1)} s: ${f(((w.samples - tracedDrained) * 1_000) / (Date.now() - tracedAt))} samples/s, ${f(n / 1_000, 1)} s of polls behind (pending ${g?.pending}, XINFO lag ${g?.lag}, XLEN ${await probe.xlen('outbox')}), writer ${await probe.hget('actor:history/bench', 'state')}, CPU runtime / VictoriaMetrics / Redis ${c.map((x, i) => f(cpuPercent(tc[i]!, x))).join(' / ')} %`,
        );
        tracedAt = Date.now();
        tracedDrained = w.samples;
        tc = c;
      }
      await sleep(100);
    }
    const done = Date.now();
    // Entries the outbox's bound dropped (counted by c2m) during the outage and the drain: none at the default bound.
    const dropped = Number((await probe.hget('stats:outbox', 'dropped')) ?? 0);
    const dc1 = cpus();
    const drainCpu = dc0.map((x, i) => f(cpuPercent(x, dc1[i]!))).join(' / ');
    // Samples a second written from the writer's return (its window's rewrite not counted) to the catch-up.
    const drainRate = ((await writerContext(probe)).samples - dFirst) / Math.max(0.001, (done - (first || back)) / 1_000);
    // A writer that never came back: the drain time is the whole wait.
    const drainS = (done - (first || back)) / 1_000;
    const caughtUp = left <= CAUGHT_UP_MS;
    // Real time drained: the outage and the wait for the writer's retry (the backlog it found), in drainS.
    const drain = (first - down) / 1_000 / drainS;
    const lag = lags.sort((a, b) => a - b);
    const offered = (o.step.channels * o.step.points * 1_000) / o.step.pollMs;
    return [
      siteLabel(o),
      f(offered),
      f((w1.samples - w0.samples) / seconds),
      `${f(percentile(lag, 50))} / ${f(percentile(lag, 99))}`,
      `${f(rtCpu)} % / ${f(rtRss)} MB`,
      `${f(vmCpu)} % / ${f(vmRss)} MB`,
      `${o.outageMs / 1_000} s (${f(before)} entries${dropped > 0 ? `, ${f(dropped)} dropped by the outbox's bound` : ''})`,
      `${
        caughtUp
          ? `${f(drainS, 1)} s (${f(drain, 1)}×), retry after ${f((first - back) / 1_000, 1)} s`
          : first === 0
            ? `the writer did not come back in ${f(drainS, 1)} s: ${f(left / 1_000, 1)} s of polls behind`
            : `not caught up after ${f(drainS, 1)} s of drain: still ${f(left / 1_000, 1)} s of polls behind, retry after ${f((first - back) / 1_000, 1)} s`
      }; ${f(drainRate)} samples/s; CPU runtime / VictoriaMetrics / Redis ${drainCpu} %`,
      `${f(bytes / Math.max(1, recent.length))} (${f(points / Math.max(1, recent.length))})`,
    ]
      .join(' | ')
      .replace(/^/, '| ')
      .concat(' |');
  } finally {
    if (runtime.exitCode === null && runtime.signalCode === null) {
      runtime.kill('SIGTERM');
      await new Promise((r) => runtime.once('exit', r));
    }
    probe.disconnect();
    await vm.stop();
    await redis.stop();
    rmSync(vmDir, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  }
}

/** 10 series: a year of 1 h tier buckets and a day of 1 m tier buckets, written directly; then the two queries, `runs` times each. */
export async function queryRows(runs: number): Promise<string[]> {
  const vm = await spawnVictoria({ retentionPeriod: '2y' });
  try {
    const now = Date.now();
    const write = async (lines: string[]) => {
      for (let i = 0; i < lines.length; i += 50_000) {
        const r = await fetch(`${vm.url}/api/v2/write?precision=ms`, { method: 'POST', body: lines.slice(i, i + 50_000).join('\n') });
        await r.arrayBuffer();
      }
    };
    for (const [tier, size, count] of [
      ['1h', 3_600_000, 366 * 24],
      ['1m', 60_000, 25 * 60],
    ] as const) {
      const lines: string[] = [];
      const last = Math.floor(now / size) * size;
      for (let s = 1; s <= 10; s++)
        for (let k = 0; k < count; k++) {
          const v = Math.sin(k / 24) * 100;
          lines.push(
            `voltage_point_${tier},channel=bq,type=m,point=${s} min=${v - 1},max=${v + 1},mean=${v},last=${v},count=60,sum=${v * 60} ${last - k * size}`,
          );
        }
      await write(lines);
    }
    await fetch(`${vm.url}/internal/force_flush`).then((r) => r.arrayBuffer());
    const q = new HistoryQueries({ url: vm.url, maxPoints: 100_000 });
    const series = Array.from({ length: 10 }, (_, i) => `channel/bq/m/${i + 1}`).join(',');
    const rows: string[] = [];
    for (const [what, params] of [
      ['10 series × 24 h at 1-minute steps', { series, from: '-24h', step: '60s', agg: 'mean' }],
      ['10 series × 365 days at 1-day steps', { series, from: '-365d', step: '1d', agg: 'mean' }],
    ] as const) {
      const times: number[] = [];
      let tier = '';
      let values = 0;
      for (let i = 0; i < runs; i++) {
        const t = performance.now();
        const a = await q.query(params);
        times.push(performance.now() - t);
        tier = a.tier;
        values = a.series.reduce((s, x) => s + x.values.filter((v) => v !== null).length, 0);
      }
      times.sort((a, b) => a - b);
      rows.push(`| ${what} | ${tier} | ${values} | ${f(percentile(times, 50), 1)} | ${f(percentile(times, 99), 1)} |`);
    }
    return rows;
  } finally {
    await vm.stop();
  }
}
