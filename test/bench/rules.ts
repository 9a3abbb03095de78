/**
 * Rule benchmark: reaction latency on a busy site. Workload: C virtual
 * channels × P points @ poll, every point a sine (amplitude 100, period T)
 * changing every poll, and 10 control points per channel; one model per
 * channel (no calculations); R rules per model, rule k triggered by a change
 * of point p(k·P/R) of its model, `when: "p > 90"`, then its own control to 1,
 * else to 0 (no `for`, no cooldown). Each rule is evaluated on every poll of
 * its model: evaluations/s = rules × polls/s of a model, the triggering
 * changes counted as the notifications arrive. Latency is from the generation
 * timestamp of the poll whose value crossed 90 to the time Redis accepted the
 * rule's command in m2c (the `accepted` entry of `audit:commands`). A row
 * without rules gives the site's own CPU: the difference is the rules' CPU.
 * Where the time goes, per measured command (the rule's execution entry in
 * `rule:executions` carries the evaluation's time and, as its id, the time
 * Redis committed it): generated → evaluated (poll, c2m, the update reaching
 * the rule actor), evaluated → step committed (rule_commit), committed →
 * command accepted (m2c).
 */
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { Crossings, entriesBetween, measureWindow, sineSiteFiles, THRESHOLD, watchedPoints, type SineSite, type WindowResult } from './crossings.js';
import { f, withSite, type Windows } from './harness.js';
import { hostSample, ownCpuSample, percentile, processTree, type CpuSample, type HostSample } from './procstat.js';

export interface RuleStep extends SineSite {
  readonly rulesPerModel: number;
}

export interface RuleResult extends WindowResult {
  readonly delivered: number;
  readonly evaluationsPerSecond: number;
  readonly commandsPerSecond: number;
  readonly measured: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
  /** p50 / p99 of each part of the latency (ms): generated → evaluated → committed → accepted. */
  readonly parts: { readonly evaluated: Split; readonly committed: Split; readonly accepted: Split };
  /** Generated → a c2m update seen by the bench's own subscriber (every update of the window): the site's path without the rules. */
  readonly seen: Split;
  /** The runtime's event-loop delay p99 / max (ms) over its last heartbeat interval. */
  readonly loopDelay: string;
}

export interface Split {
  readonly p50: number;
  readonly p99: number;
}

/** The head of a c2m notification: its generation timestamp. */
const HEAD = /^\{"ts":(\d+),"src":"c2m"/;

const split = (xs: number[]): Split => {
  xs.sort((a, b) => a - b);
  return { p50: percentile(xs, 50), p99: percentile(xs, 99) };
};

function rulesFile(step: RuleStep): string {
  const every = step.points / step.rulesPerModel;
  const lines: string[] = [];
  for (let c = 0; c < step.channels; c++) {
    for (let k = 1; k <= step.rulesPerModel; k++) {
      const p = `m${c}.p${k * every}`;
      lines.push(
        `  - { id: r${c}-${k}, trigger: { onChange: [${p}] }, when: "${p} > ${THRESHOLD}", then: [{ control: { model: m${c}, name: c${k}, value: 1 } }], else: [{ control: { model: m${c}, name: c${k}, value: 0 } }] }`,
      );
    }
  }
  return `rules:\n${lines.join('\n')}\n`;
}

export async function ruleRow(step: RuleStep, windows: Windows): Promise<RuleResult> {
  const { watched, pointOf } = watchedPoints(step, step.rulesPerModel, (c, k) => `rule:r${c}-${k}`);
  const files = sineSiteFiles({ ...step, controls: Math.max(1, step.rulesPerModel) });
  // runtime.heapGrowingPercent: the site's default (100 with rules, V8's own without) unless BENCH_RULES_HEAP_GROWING=<percent>
  // sets it in both rows (0: V8's own), for a comparison (docs/benchmarks.md, round 21).
  const growing = process.env.BENCH_RULES_HEAP_GROWING;
  if (growing !== undefined) files['runtime.yaml'] = files['runtime.yaml']!.replace('runtime:\n', `runtime:\n  heapGrowingPercent: ${Number(growing)}\n`);
  if (step.rulesPerModel > 0) files['rules.yaml'] = rulesFile(step);
  return withSite(files, async (run) => {
    const crossings = new Crossings(watched);
    await crossings.subscribe(run.sub);
    const seen: number[] = [];
    run.sub.on('pmessage', (_p: string, _c: string, msg: string) => {
      if (!crossings.measuring) return;
      const m = HEAD.exec(msg);
      if (m) seen.push(Date.now() - Number(m[1]));
    });
    // BENCH_RULES_DUMP: the CPU of the runtime (its own thread and process), its children, Redis and the whole host every 100 ms.
    const timeline = process.env.BENCH_RULES_DUMP ? cpuTimeline(run.runtime.pid!, run.redis.process.pid!) : undefined;
    // With the dump, Redis's own view: every call slower than 1 ms in the slow log, and its per-command latency percentiles.
    if (process.env.BENCH_RULES_DUMP) {
      await run.probe.config('SET', 'slowlog-log-slower-than', '1000');
      await run.probe.config('SET', 'slowlog-max-len', '100000');
      await run.probe.slowlog('RESET');
      await run.probe.config('RESETSTAT');
    }
    const w = await measureWindow(run, crossings, windows);
    const cpu = timeline?.stop();
    const redisSide = process.env.BENCH_RULES_DUMP
      ? {
          slowlog: await run.probe.slowlog('GET', 100000),
          commandstats: await run.probe.info('commandstats'),
          latencystats: await run.probe.info('latencystats'),
        }
      : undefined;
    const [lp99, lmax] = await run.probe.hmget('actor:root', 'loopDelayP99Ms', 'loopDelayMaxMs');
    const lat: number[] = [];
    const parts = { evaluated: [] as number[], committed: [] as number[], accepted: [] as number[] };
    // Each rule's executions (evaluation time, commit time), oldest first, to split a command's latency.
    const executions = new Map<string, Array<{ evaluated: number; committed: number }>>();
    for (const e of await entriesBetween(run.probe, 'rule:executions', w.t0 - 1_000, w.t1)) {
      if (e.fields.get('kind') !== 'execution') continue;
      const list = executions.get(`rule:${e.fields.get('id')}`) ?? [];
      list.push({ evaluated: Number(e.fields.get('time')), committed: e.at });
      executions.set(`rule:${e.fields.get('id')}`, list);
    }
    let commands = 0;
    /** BENCH_RULES_DUMP=<file>: each measured command as [accepted at, latency, evaluated − generated (ms), its rule, committed at], to lay beside a trace. */
    const dump: Array<[number, number, number, string, number]> = [];
    for (const e of await entriesBetween(run.probe, 'audit:commands', w.t0, w.t1)) {
      if (e.fields.get('event') !== 'accepted') continue;
      commands++;
      const who = e.fields.get('who') ?? '';
      const key = pointOf.get(who);
      const l = key ? crossings.latency(key, e.at, w.t0) : undefined;
      if (l === undefined) continue;
      lat.push(l);
      const list = executions.get(who) ?? [];
      let x: { evaluated: number; committed: number } | undefined;
      for (let i = list.length - 1; i >= 0 && !x; i--) if (list[i]!.committed <= e.at) x = list[i];
      if (!x) continue;
      const generated = e.at - l;
      dump.push([e.at, l, x.evaluated - generated, who, x.committed]);
      parts.evaluated.push(x.evaluated - generated);
      parts.committed.push(x.committed - x.evaluated);
      parts.accepted.push(e.at - x.committed);
    }
    if (process.env.BENCH_RULES_DUMP)
      writeFileSync(process.env.BENCH_RULES_DUMP, JSON.stringify({ commands: dump, cpu, window: [w.t0, w.t1], redis: redisSide }));
    lat.sort((a, b) => a - b);
    return {
      ...w,
      delivered: crossings.points / w.seconds,
      // Every c2m update of a model changes every point: one evaluation of each of its rules.
      evaluationsPerSecond: (crossings.updates * step.rulesPerModel) / w.seconds,
      commandsPerSecond: commands / w.seconds,
      measured: lat.length,
      p50: percentile(lat, 50),
      p99: percentile(lat, 99),
      max: lat.length ? lat[lat.length - 1]! : Number.NaN,
      parts: { evaluated: split(parts.evaluated), committed: split(parts.committed), accepted: split(parts.accepted) },
      seen: split(seen),
      loopDelay: `${lp99 ?? '?'} / ${lmax ?? '?'}`,
    };
  });
}

/**
 * Every 100 ms: [time (ms), runtime, its child processes, Redis, all of the host] in % of one core over the interval,
 * to tell a slow burst that had the cores to itself from one that shared them with other work.
 */
function cpuTimeline(runtime: number, redis: number): { stop(): Array<[number, number, number, number, number]> } {
  const children = processTree(runtime).filter((p) => p !== runtime);
  const take = () => ({ at: Date.now(), rt: ownCpuSample(runtime), ch: children.map((p) => ownCpuSample(p)), rd: ownCpuSample(redis), host: hostSample() });
  const out: Array<[number, number, number, number, number]> = [];
  let last = take();
  const pct = (a: CpuSample, b: CpuSample) => ((b.cpuMs - a.cpuMs) / (b.at - a.at)) * 100;
  const host = (a: HostSample, b: HostSample) => (b.total > a.total ? ((b.busy - a.busy) / (b.total - a.total)) * cpus().length * 100 : 0);
  const timer = setInterval(() => {
    const now = take();
    const ch = now.ch.reduce((sum, c, i) => sum + pct(last.ch[i]!, c), 0);
    out.push([now.at, Math.round(pct(last.rt, now.rt)), Math.round(ch), Math.round(pct(last.rd, now.rd)), Math.round(host(last.host, now.host))]);
    last = now;
  }, 100);
  return {
    stop() {
      clearInterval(timer);
      return out;
    },
  };
}

export const RULE_HEADER =
  '| workload (channels × points @ poll) | rules | delivered points/s | evaluations/s | commands/s | gen→command accepted p50 / p99 / max (ms) | commands measured | runtime CPU | of which the rules | Redis CPU | runtime RSS | CPU of other processes | host steal |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|';

export function ruleFormat(step: RuleStep, r: RuleResult, baseline: RuleResult | undefined): string {
  const none = step.rulesPerModel === 0;
  const share = baseline && !none ? `${f(r.runtimeCpu - baseline.runtimeCpu)} %` : '—';
  return `| ${step.channels} × ${step.points} @ ${step.pollMs} ms | ${step.channels * step.rulesPerModel} | ${f(r.delivered)} | ${none ? '—' : f(r.evaluationsPerSecond)} | ${none ? '—' : f(r.commandsPerSecond)} | ${none ? '—' : `${f(r.p50)} / ${f(r.p99)} / ${f(r.max)}`} | ${none ? '—' : r.measured} | ${f(r.runtimeCpu)} % | ${share} | ${f(r.redisCpu)} % | ${f(r.rssEnd)} MB | ${f(r.others)} % | ${f(r.steal, 1)} % |`;
}

/** Where the latency goes (a line under the table). */
export function ruleParts(step: RuleStep, r: RuleResult): string {
  const p = (x: Split) => `${f(x.p50)} / ${f(x.p99)}`;
  const site = `generated → update seen by the bench's subscriber ${p(r.seen)}; runtime event-loop delay p99 / max ${r.loopDelay}`;
  if (step.rulesPerModel === 0) return `no rules, p50 / p99 (ms): ${site}`;
  return `${step.channels * step.rulesPerModel} rules, p50 / p99 (ms) of each part: generated → evaluated ${p(r.parts.evaluated)}; evaluated → step committed ${p(r.parts.committed)}; committed → command accepted ${p(r.parts.accepted)}; ${site}`;
}
