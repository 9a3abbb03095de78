/**
 * Alarm benchmark: detection latency on a busy site. Workload: C virtual
 * channels × P points, every point a sine (amplitude 100, period T) changing
 * every poll; one model per channel (no calculations); A alarms per model from
 * the model template (`above: 90` on every (P/A)-th point, so that their
 * crossings are spread over the period). Latency is from the generation
 * timestamp of the poll whose value crossed 90 to the time Redis appended the
 * alarm's raise (or its return to normal) to `alarm:events`, split at the
 * moment a subscriber of the model updates (this process) received the
 * notification that carried the crossing: before it is the kernel's part (poll,
 * c2m, publish), after it the alarms' own (the alarm actor's receipt,
 * evaluation, commit). A row without alarms gives the site's own CPU, for the
 * alarms' share, and its kernel latency.
 */
import { Crossings, entriesBetween, measureWindow, sineSiteFiles, THRESHOLD, watchedPoints, type SineSite, type WindowResult } from './crossings.js';
import { f, sleep, withSite, type Windows } from './harness.js';
import { percentile, rssMb } from './procstat.js';

export interface AlarmStep extends SineSite {
  readonly alarmsPerModel: number;
}

export interface AlarmResult extends WindowResult {
  readonly delivered: number;
  readonly eventsPerSecond: number;
  readonly measured: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
  readonly commitP50: number;
  readonly commitP99: number;
  /** Generation → a subscriber of the model updates, over every poll: the kernel's part, which the alarms cannot beat. */
  readonly notifiedP50: number;
  readonly notifiedP99: number;
  /** That notification → the alarm event, per event: the alarms' own part. */
  readonly alarmP50: number;
  readonly alarmP99: number;
  /** The runtime's event-loop delay, p99 / max over its last heartbeat interval. */
  readonly loopDelay: string;
  readonly redisRss: number;
  /** The runtime's memory through the window, every 1/20 of it (at least 5 s apart): seconds in, RSS and V8 heap (MB). */
  readonly memory: ReadonlyArray<{ readonly s: number; readonly rss: number; readonly heapUsed: number; readonly heapTotal: number }>;
}

function alarmTemplate(step: AlarmStep): string {
  if (step.alarmsPerModel === 0) return '';
  const every = step.points / step.alarmsPerModel;
  const lines = Array.from(
    { length: step.alarmsPerModel },
    (_, i) => `      - { id: a${i + 1}, when: { point: p${(i + 1) * every}, above: ${THRESHOLD} }, severity: minor }`,
  );
  return `    alarms:\n${lines.join('\n')}\n`;
}

export async function alarmRow(step: AlarmStep, windows: Windows): Promise<AlarmResult> {
  const { watched, pointOf } = watchedPoints(step, step.alarmsPerModel, (c, k) => `m${c}.a${k}`);
  const files = sineSiteFiles(step, alarmTemplate(step));
  files['runtime.yaml'] += 'alarmPolicy:\n  flood: { count: 1000000, windowMs: 600000 }\n';
  return withSite(files, async (run) => {
    const crossings = new Crossings(watched);
    await crossings.subscribe(run.sub);
    // The heap figures are the runtime's own heartbeat (every 5 s), RSS is read here.
    const memory: Array<{ s: number; rss: number; heapUsed: number; heapTotal: number }> = [];
    const start = Date.now() + windows.warmupMs;
    const sample = async () => {
      const [used, total] = await run.probe.hmget('actor:root', 'heapUsedMb', 'heapTotalMb');
      memory.push({ s: Math.round((Date.now() - start) / 1000), rss: rssMb(run.runtime.pid!), heapUsed: Number(used), heapTotal: Number(total) });
    };
    const sampler = setInterval(
      () => {
        if (Date.now() >= start) void sample().catch(() => undefined);
      },
      Math.max(5_000, windows.measureMs / 20),
    );
    const w = await measureWindow(run, crossings, windows).finally(() => clearInterval(sampler));
    await sleep(500);
    const lat: number[] = [];
    // From the notification that carried the crossing (as this process received it) to the append.
    const alarmLat: number[] = [];
    // The part of it from the evaluation that saw the crossing (its clock reading, the event's time) to the append.
    const commitLat: number[] = [];
    let events = 0;
    for (const e of await entriesBetween(run.probe, 'alarm:events', w.t0, w.t1)) {
      const event = e.fields.get('event');
      if (event !== 'CONDITION_ON' && event !== 'CONDITION_OFF') continue;
      events++;
      const key = pointOf.get(e.fields.get('id') ?? '');
      const c = key ? crossings.crossing(key, e.at, w.t0, event === 'CONDITION_ON') : undefined;
      if (c) {
        lat.push(e.at - c.ts);
        alarmLat.push(e.at - c.at);
      }
      commitLat.push(e.at - Number(e.fields.get('time')));
    }
    for (const a of [commitLat, lat, alarmLat, crossings.notified]) a.sort((x, y) => x - y);
    const [lp99, lmax] = await run.probe.hmget('actor:root', 'loopDelayP99Ms', 'loopDelayMaxMs');
    return {
      ...w,
      delivered: crossings.points / w.seconds,
      eventsPerSecond: events / w.seconds,
      measured: lat.length,
      p50: percentile(lat, 50),
      p99: percentile(lat, 99),
      max: lat.length ? lat[lat.length - 1]! : Number.NaN,
      commitP50: percentile(commitLat, 50),
      commitP99: percentile(commitLat, 99),
      notifiedP50: percentile(crossings.notified, 50),
      notifiedP99: percentile(crossings.notified, 99),
      alarmP50: percentile(alarmLat, 50),
      alarmP99: percentile(alarmLat, 99),
      loopDelay: `${lp99 ?? '?'} / ${lmax ?? '?'} ms`,
      redisRss: rssMb(run.redis.process.pid!),
      memory,
    };
  });
}

export const ALARM_HEADER =
  '| workload (channels × points @ poll) | alarm definitions | delivered points/s | raises + returns /s | gen→alarm event p50 / p99 / max (ms) | gen→model update, every poll (the kernel) p50 / p99 | model update → alarm event p50 / p99 | of which evaluation → event p50 / p99 (ms) | events measured | runtime event-loop delay p99 / max | runtime CPU | Redis CPU | runtime RSS start → end | Redis RSS | CPU of other processes | host steal |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|';

export function alarmFormat(step: AlarmStep, r: AlarmResult): string {
  const none = step.alarmsPerModel === 0;
  return `| ${step.channels} × ${step.points} @ ${step.pollMs} ms | ${step.channels * step.alarmsPerModel} | ${f(r.delivered)} | ${none ? '—' : f(r.eventsPerSecond)} | ${none ? '—' : `${f(r.p50)} / ${f(r.p99)} / ${f(r.max)}`} | ${f(r.notifiedP50)} / ${f(r.notifiedP99)} | ${none ? '—' : `${f(r.alarmP50)} / ${f(r.alarmP99)}`} | ${none ? '—' : `${f(r.commitP50)} / ${f(r.commitP99)}`} | ${none ? '—' : r.measured} | ${r.loopDelay} | ${f(r.runtimeCpu)} % | ${f(r.redisCpu)} % | ${f(r.rssStart)} → ${f(r.rssEnd)} MB | ${f(r.redisRss)} MB | ${f(r.others)} % | ${f(r.steal, 1)} % |`;
}

/** The runtime's memory through a long window (a line under the table): is RSS flat, and is the heap? */
export function alarmMemory(r: AlarmResult): string {
  const cells = r.memory.map((m) => `${m.s} s ${f(m.rss)} / ${f(m.heapUsed)} / ${f(m.heapTotal)}`);
  return `runtime memory through the window (RSS / V8 heap used / heap total, MB): ${cells.join('; ')}`;
}
