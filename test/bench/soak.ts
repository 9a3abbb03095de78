/**
 * Soak: the real `voltage start` against a private redis-server (AOF,
 * appendfsync always) at 50,000 points/s (50 virtual channels × 1,000 points
 * every second, as the kernel section builds them) for BENCH_SOAK_MIN minutes
 * (30), with a fault injected every 2 minutes (20 s with BENCH_QUICK=1),
 * cycling through the fault matrix of test/faults/ as it can be injected from
 * outside (./soakFaults.ts): Redis restarted on its AOF (kill -9), FLUSHALL,
 * FUNCTION FLUSH, Redis unreachable for 20 s (SIGSTOP … SIGCONT), the gateway
 * process killed, 1,000 malformed API requests, a Modbus device that answers
 * garbage, one that stops answering, its TCP link dropped on every request
 * (10 s each, by a proxy in front of the simulator), a slow WebSocket client
 * (it stops reading until it is marked behind, then reads again), Redis
 * restarted without persistence (on an empty AOF folder), and the runtime
 * killed with kill -9 just after a control was accepted, then started again.
 *
 * Beside the load, a small channel `sq` (a counter every 100 ms) mapped to a
 * model `seq` with a control, a Modbus TCP channel `mb` (one point every
 * 100 ms from the simulator in this process, behind the proxy), and three
 * kinds of measurement from outside:
 * - pollers that call four REST endpoints back to back all the time: the
 *   longest answer while a fault is on (from its injection to its recovery);
 * - a control every second: each one accepted (202) must end, `confirmed` unless a fault stopped it;
 * - the model's timestamp: the newest write `c2m` acknowledged before a fault
 *   (its notification, published by the same Function call after the write,
 *   and after the AOF's fsync) must still be in Redis after it.
 * "Writes lost" counts accepted controls that never ended (still pending, or
 * their record gone without a word; an end reported to the caller counts as
 * ended: `confirmed`, `timeout` when the deadline passed while Redis was
 * stopped, `lost` for a record that FLUSHALL or an empty Redis erased; the
 * control the runtime was killed after counts like the others) plus, for each
 * fault that does not erase Redis on purpose, the `seq` polls acknowledged
 * before it and missing after it. Polls that could not be written while Redis
 * was unreachable were never acknowledged: they are counted apart
 * (`unwrittenPolls`, as `voltage status` shows them; a killed runtime's are
 * read just before the kill). The Modbus device's polls lost during its
 * faults are their effect, not writes lost; what its faults check instead
 * (its point goes bad within 5 s and never reads `good` before the fault
 * ends), and the slow client's (it is marked behind), are "checks failed".
 * With the runtime killed, the memory before the kill is printed beside the
 * end's (the end's runtime is younger than the run).
 *
 * Each recovery is printed (stderr) with when each of its conditions was first
 * met (Redis answering, the site, the mapping, a new write, /health ok, and
 * `own`: what the fault needs back too — the device's point good with a new
 * reading, the slow client's snapshot, the killed command ended), which says
 * what held it back. To look into one fault: BENCH_SOAK_FAULTS=<words>
 * keeps only the faults whose name holds one of them (`gateway`, `AOF`), and
 * BENCH_SOAK_LOG=<file> keeps the runtime's log there, at level info.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { sha256 } from '../../runtime/gateway/http.js';
import { freePort, spawnRedis } from '../../runtime/redisServer.js';
import { startSim } from '../../runtime/sim.js';
import { modbusFaultChannel, modbusFaultSite } from '../faults/site.js';
import { startTcpProxy } from '../helpers/tcpProxy.js';
import { countValues, f } from './harness.js';
import { siteFiles } from './kernel.js';
import { percentile, rssMb } from './procstat.js';
import { type Control, type Ctx, ENDS, FAULTS, sleep, TOKEN, within } from './soakFaults.js';

const SEQ_POLL_MS = 100;

export interface SoakOptions {
  readonly minutes: number;
  readonly faultEveryMs: number;
  readonly outageMs: number;
  readonly warmupMs: number;
}

interface FaultStats {
  times: number;
  recoveryMs: number[];
  longestAnswerMs: number;
  lostPolls: number;
}

interface Memory {
  runtimeRss: number;
  gatewayRss: number;
  heapUsed: number;
  redisRss: number;
}

const metric = (text: string, name: string) => Number(new RegExp(`^${name} ([\\d.e+]+)`, 'm').exec(text)?.[1]) / 2 ** 20;

export async function soak(opts: SoakOptions): Promise<string[]> {
  const dir = mkdtempSync(join(tmpdir(), 'voltage-soak-'));
  const aofDir = mkdtempSync(join(tmpdir(), 'voltage-soak-aof-'));
  const port = await freePort();
  const files = siteFiles({ channels: 50, points: 1000, pollMs: 1000 });
  files['channels.yaml'] +=
    `  - { id: sq, protocol: virtual, pollMs: ${SEQ_POLL_MS}, points: [{ type: m, id: 1, sim: { kind: counter, start: 0, step: 1 } }, { type: a, id: 1, min: 0, max: 1000000000 }] }\n`;
  // The Modbus device `mb` (the simulator, in this process) behind a proxy that the device faults act on.
  const cleanups: Array<() => unknown> = [];
  const simPort = await freePort();
  const sim = await startSim(modbusFaultSite(simPort), { updateMs: 20 });
  cleanups.push(() => sim.stop());
  let deviceAnswers: () => Ctx['deviceAnswers'] = () => 'as they are';
  const deviceProxy = await startTcpProxy(simPort, cleanups, (d) => {
    const answers = deviceAnswers();
    return answers === 'garbage' ? randomBytes(d.length) : answers === 'swallowed' ? Buffer.alloc(0) : d;
  });
  files['channels.yaml'] += modbusFaultChannel(deviceProxy.port);
  files['models.yaml'] += '  - { id: seq, measurements: { n: {} }, controls: { limit: {} }, mapping: { n: "sq:m:1", limit: "sq:a:1" } }\n';
  files['gateway.yaml'] =
    `gateway:\n  port: ${port}\n  rateLimit: { perSecond: 100000, burst: 100000 }\n  tokens:\n    - { name: soak, role: admin, sha256: ${sha256(TOKEN)} }\n`;
  // With its log kept (BENCH_SOAK_LOG), the runtime logs at info: restarts and their backoff are told there.
  if (process.env.BENCH_SOAK_LOG) files['runtime.yaml'] = files['runtime.yaml']!.replace('level: warn', 'level: info');
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);

  const redis = await spawnRedis({ aofDir });
  // The probe asks a Redis that is loading its AOF every 100 ms whether it is done (ioredis waits Redis's estimate, up to 10 s).
  const quick = { retryStrategy: () => 100, maxRetriesPerRequest: 1, maxLoadingRetryTime: 100 };
  const probe = new Redis(redis.url, quick);
  const sub = new Redis(redis.url, { retryStrategy: () => 100 });
  for (const c of [probe, sub]) c.on('error', () => undefined);
  const base = `http://127.0.0.1:${port}`;
  // BENCH_SOAK_LOG=<file>: the runtime's log (JSON lines, its gateway process's included) goes there.
  const logFd = process.env.BENCH_SOAK_LOG ? openSync(process.env.BENCH_SOAK_LOG, 'w') : 'ignore';
  const startRuntime = () =>
    spawn('./runtime/bin/voltage.js', ['start', '--config', dir], {
      env: { ...process.env, REDIS_URL: redis.url, LOG_FORMAT: 'json' },
      stdio: ['ignore', logFd, 'inherit'],
    });
  const api = async (method: string, path: string, body?: unknown) => {
    const r = await fetch(base + path, {
      method,
      headers: { authorization: `Bearer ${TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
    return { status: r.status, text: await r.text() };
  };
  const memory = async (): Promise<Memory> => {
    const m = await api('GET', '/metrics');
    return {
      runtimeRss: rssMb(ctx.runtime.pid!),
      gatewayRss: metric(m.text, 'voltage_gateway_process_resident_memory_bytes'),
      heapUsed: metric(m.text, 'voltage_nodejs_heap_size_used_bytes'),
      redisRss: rssMb(ctx.redis.process.pid!),
    };
  };
  // What a runtime's process alone knows, read before the runtime is killed: its memory, and its channels' polls not written.
  let beforeKill: Memory | undefined;
  let unwrittenBeforeKills = 0;
  const ctx: Ctx = {
    redis,
    aofDir,
    probe,
    base,
    outageMs: opts.outageMs,
    bad5xx: 0,
    deviceProxy,
    deviceAnswers: 'as they are',
    runtime: startRuntime(),
    startRuntime,
    beforeRuntimeKill: async () => {
      beforeKill = await memory();
      unwrittenBeforeKills += await unwrittenPolls(probe);
    },
    api,
    controls: [],
    problems: [],
    notes: [],
  };
  deviceAnswers = () => ctx.deviceAnswers;
  let running = true;
  const tasks: Array<Promise<void>> = [];
  try {
    // The newest `seq` write acknowledged (its notification's ts), and the points delivered.
    let lastAck = 0;
    let points = 0;
    sub.on('pmessage', (_p: string, ch: string, msg: string) => {
      if (ch === 'modsrv:seq:update') {
        const ts = Number(/^\{"ts":(\d+)/.exec(msg)?.[1]);
        if (ts > lastAck) lastAck = ts;
      } else if (msg.includes('"src":"c2m"')) points += countValues(msg);
    });
    await sub.psubscribe('modsrv:*:update');
    const started = Date.now();
    while ((await within(1_000, probe.hget('actor:root', 'status'))) !== 'running') {
      if (Date.now() - started > 60_000) throw new Error('runtime did not start within 60 s');
      if (ctx.runtime.exitCode !== null) throw new Error(`runtime exited with ${ctx.runtime.exitCode}`);
      await sleep(200);
    }
    await sleep(opts.warmupMs);

    // The gateway serving first (a gateway process that failed at its start is being restarted: the run goes on).
    for (const until = Date.now() + 60_000; ; await sleep(200)) {
      const ok = await api('GET', '/health').then(
        (r) => r.status === 200,
        () => false,
      );
      if (ok) break;
      if (Date.now() > until) throw new Error('the gateway did not answer /health within 60 s');
    }
    const mem0 = await memory();
    const t0 = Date.now();
    const points0 = points;

    // Outage windows (injection → recovery), and the answers of the pollers.
    const windows: Array<{ fault: string; from: number; to: number }> = [];
    const answers: Array<{ at: number; ms: number; ok: boolean }> = [];
    for (const path of ['/health', '/api/v1/models/seq', '/api/v1/channels', '/api/v1/actors']) {
      tasks.push(
        (async () => {
          while (running) {
            const at = Date.now();
            let ok = false;
            try {
              ok = (await api('GET', path)).status < 600;
            } catch {
              // no answer: refused while the gateway restarts, or a timeout (30 s)
            }
            answers.push({ at, ms: Date.now() - at, ok });
            await sleep(ok ? 100 : 250);
          }
        })(),
      );
    }

    // A control every second; its status read 3 s later (and again at the end).
    const controls: Control[] = ctx.controls;
    let refused = 0;
    let unanswered = 0;
    tasks.push(
      (async () => {
        for (let k = 0; running; k++) {
          try {
            const r = await api('POST', '/api/v1/models/seq/controls/limit', { value: k });
            if (r.status === 202) controls.push({ id: (JSON.parse(r.text) as { commandId: string }).commandId, at: Date.now() });
            else refused += 1;
          } catch {
            unanswered += 1;
          }
          for (const c of controls) {
            if (ENDS.has(c.status ?? '') || Date.now() - c.at < 3_000) continue;
            try {
              const r = await api('GET', `/api/v1/commands/${c.id}`);
              if (r.status === 200) c.status = (JSON.parse(r.text) as { status: string }).status;
            } catch {
              // read again next round
            }
          }
          await sleep(1_000);
        }
      })(),
    );

    // BENCH_SOAK_FAULTS=<words>: only the faults whose name contains one of them (to reproduce one).
    const only = process.env.BENCH_SOAK_FAULTS?.split(',').filter(Boolean);
    const faults = only ? FAULTS.filter((x) => only.some((w) => x.name.includes(w))) : FAULTS;
    if (faults.length === 0) throw new Error(`BENCH_SOAK_FAULTS=${process.env.BENCH_SOAK_FAULTS} names no fault`);
    const byFault = new Map<string, FaultStats>(faults.map((x) => [x.name, { times: 0, recoveryMs: [], longestAnswerMs: 0, lostPolls: 0 }]));
    const flushes: number[] = [];
    const seqTs = async () => Number(await within(2_000, probe.hget('modsrv:seq:measurement:ts', 'n')));
    const endAt = t0 + opts.minutes * 60_000;
    for (let i = 0; Date.now() + opts.faultEveryMs <= endAt; i++) {
      await sleep(opts.faultEveryMs - ((Date.now() - t0) % opts.faultEveryMs));
      const fault = faults[i % faults.length]!;
      const stats = byFault.get(fault.name)!;
      stats.times += 1;
      const ackBefore = lastAck;
      const from = Date.now();
      if (fault.erases) flushes.push(from);
      await fault.inject(ctx);
      const injected = Date.now();
      // Acknowledged before, still there after (read as soon as Redis answers again).
      if (!fault.erases) {
        let after = Number.NaN;
        for (let k = 0; k < 100 && !Number.isFinite(after); k++) after = await seqTs();
        if (after < ackBefore) stats.lostPolls += Math.round((ackBefore - after) / SEQ_POLL_MS);
      }
      // Recovered: the site and mapping in Redis, a new `seq` write, and /health ok (each one's first time noted).
      const firstMet = new Map<string, number>();
      for (;;) {
        // All at once, each with a short limit: a round of checks one after the other, each waiting out
        // a Redis still loading, took seconds, and a recovery was seen that much later than it happened.
        const [pong, site, mapping, ts, health, own] = await Promise.all([
          within(250, probe.ping()),
          within(250, probe.exists('site:config')),
          within(250, probe.hlen('mapping:c2m')),
          within(250, probe.hget('modsrv:seq:measurement:ts', 'n')).then(Number),
          // 0: refused while the gateway restarts
          api('GET', '/health').then(
            (r) => r.status,
            () => 0,
          ),
          // what this fault needs back too (the device's point, the slow client's snapshot, the command killed mid-way)
          fault.recovered ? within(1_000, fault.recovered(ctx, injected)) : true,
        ]);
        const met = { redis: pong === 'PONG', site: site === 1, mapping: (mapping ?? 0) > 0, write: ts > injected, health: health === 200, own: own === true };
        for (const [k, ok] of Object.entries(met)) if (ok && !firstMet.has(k)) firstMet.set(k, Date.now() - injected);
        if (met.site && met.mapping && met.write && met.health && met.own) break;
        if (Date.now() - injected > 120_000) throw new Error(`${fault.name}: not recovered within 120 s`);
        await sleep(50);
      }
      const to = Date.now();
      stats.recoveryMs.push(to - injected);
      windows.push({ fault: fault.name, from, to });
      const order = [...firstMet].map(([k, ms]) => `${k} ${ms}`).join(', ');
      console.error(
        `soak ${f((to - t0) / 60_000, 1)} min: ${fault.name} (injected in ${injected - from} ms), recovered ${to - injected} ms after (${order} ms)${ctx.notes.length ? `; ${ctx.notes.splice(0).join('; ')}` : ''}`,
      );
    }
    await sleep(Math.max(0, endAt - Date.now()));
    const seconds = (Date.now() - t0) / 1000;
    const delivered = (points - points0) / seconds;
    const mem1 = await memory();
    running = false;
    await Promise.all(tasks);
    tasks.length = 0;

    // Every accepted control's end (the command deadline is 10 s).
    await sleep(12_000);
    // Ended: confirmed, or an end reported to the caller (`timeout` when its deadline passed during an outage,
    // `lost` when FLUSHALL erased its record); lost: no end (pending, or its record gone without a word).
    const ends = new Map<string, number>();
    let lostControls = 0;
    const notEnded: string[] = [];
    for (const c of controls) {
      let status = c.status ?? '';
      if (!ENDS.has(status)) {
        const r = await api('GET', `/api/v1/commands/${c.id}`);
        status = r.status === 200 ? (JSON.parse(r.text) as { status: string }).status : `HTTP ${r.status}`;
      }
      const erased = flushes.some((t) => t > c.at);
      const ended = status === 'confirmed' || status === 'timeout' || status === 'failed' || (status === 'lost' && erased);
      if (ended) ends.set(status, (ends.get(status) ?? 0) + 1);
      else {
        lostControls += 1;
        const w = windows.filter((x) => x.from <= c.at).pop();
        notEnded.push(`${c.id} ${status} (accepted at ${f((c.at - t0) / 1000, 1)} s${w ? `, ${f((c.at - w.from) / 1000, 1)} s after ${w.fault}` : ''})`);
      }
    }
    const unwritten = unwrittenBeforeKills + (await unwrittenPolls(probe));

    for (const a of answers) {
      const w = windows.find((x) => a.at >= x.from && a.at <= x.to);
      if (w) {
        const s = byFault.get(w.fault)!;
        s.longestAnswerMs = Math.max(s.longestAnswerMs, a.ms);
      }
    }
    const inOutage = answers.filter((a) => windows.some((x) => a.at >= x.from && a.at <= x.to));
    const longest = Math.max(0, ...inOutage.map((a) => a.ms));
    const sorted = answers.map((a) => a.ms).sort((a, b) => a - b);
    const lostPolls = [...byFault.values()].reduce((s, x) => s + x.lostPolls, 0);
    return [
      '| duration | faults injected | writes lost | controls accepted (their ends) / refused (503) / unanswered | polls not written during outages (not acknowledged) | longest API answer during a fault | API answers p50 / p99 / max (all) | 5xx other than 503 to malformed requests | delivered points/s |',
      '|---|---|---|---|---|---|---|---|---|',
      `| ${f(seconds / 60, 1)} min | ${windows.length} | **${lostControls + lostPolls}** (${lostControls} controls, ${lostPolls} polls) | ${controls.length} (${[...ends].map(([k, n]) => `${n} ${k}`).join(', ')}) / ${refused} / ${unanswered} | ${unwritten} | **${f(longest)} ms** | ${f(percentile(sorted, 50))} / ${f(percentile(sorted, 99))} / ${f(sorted[sorted.length - 1] ?? Number.NaN)} ms | ${ctx.bad5xx} | ${f(delivered)} |`,
      '',
      // The runtime killed and started again: its memory before the last kill too (at the end it is that much younger).
      `| memory | at the start | ${beforeKill ? 'before the runtime was last killed | ' : ''}at the end |`,
      `|---|---|${beforeKill ? '---|' : ''}---|`,
      ...(
        [
          ['runtime RSS (with its gateway process)', (m) => `${f(m.runtimeRss)} MB`],
          ['runtime V8 heap used (/metrics)', (m) => `${f(m.heapUsed, 1)} MB`],
          ['gateway process RSS (/metrics)', (m) => `${f(m.gatewayRss)} MB`],
          ['Redis RSS', (m) => `${f(m.redisRss)} MB`],
        ] as Array<[string, (m: Memory) => string]>
      ).map(([name, show]) => `| ${name} | ${[mem0, beforeKill, mem1].flatMap((m) => (m ? [show(m)] : [])).join(' | ')} |`),
      '',
      '| fault | times | recovered after (max) | longest API answer during it | seq polls lost | checks failed |',
      '|---|---|---|---|---|---|',
      ...[...byFault].map(
        ([name, s]) =>
          `| ${name} | ${s.times} | ${s.recoveryMs.length ? `${f(Math.max(...s.recoveryMs))} ms` : '—'} | ${s.times ? `${f(s.longestAnswerMs)} ms` : '—'} | ${s.lostPolls} | ${ctx.problems.filter((p) => p.fault === name).length} |`,
      ),
      ...(notEnded.length ? ['', `controls that did not end: ${notEnded.join('; ')}`] : []),
      ...(ctx.problems.length ? ['', `checks failed: ${ctx.problems.map((p) => `${p.fault}: ${p.what}`).join('; ')}`] : []),
    ];
  } finally {
    running = false;
    await Promise.all(tasks);
    const runtime = ctx.runtime;
    runtime.kill('SIGTERM');
    if (runtime.exitCode === null && runtime.signalCode === null) await new Promise((r) => runtime.once('exit', r));
    ctx.slowClient?.proc.kill();
    for (const c of cleanups.reverse()) await c();
    sub.disconnect();
    probe.disconnect();
    await ctx.redis.stop();
    rmSync(ctx.aofDir, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The channels' polls that could not be written while Redis was away, as their actors last reported. */
async function unwrittenPolls(redis: Redis): Promise<number> {
  let n = 0;
  for (const id of await redis.smembers('actors')) {
    if (!id.startsWith('channel/')) continue;
    const c = JSON.parse((await redis.hget(`actor:${id}`, 'context')) ?? '{}') as { unwrittenPolls?: number };
    n += c.unwrittenPolls ?? 0;
  }
  return n;
}
