/**
 * A timeline of the runtime's hot path for a benchmark's diagnosis, off unless VOLTAGE_TRACE
 * names a file (written when the process exits). Each event is a row of four numbers in
 * preallocated typed arrays (nothing allocated per event once a name is known, so the trace
 * does not feed the GC it watches): its kind, its time (epoch ms with µs, performance's clock),
 * and two values whose meaning the kind gives (TRACE_KINDS). Names (Functions, channels, rules)
 * are numbered once. It also records V8's GC pauses (a PerformanceObserver) and the runs of a
 * 2 ms interval timer (the gaps are the thread's busy stretches). Never on in production: the
 * hooks cost a branch when it is off.
 */
import { writeFileSync } from 'node:fs';
import { PerformanceObserver, performance } from 'node:perf_hooks';

/** What `a` and `b` hold for each kind. */
export const TRACE_KINDS = {
  /** A Function call answered: a = sent at, b = the Function's name. */
  fcall: 1,
  /** One batch of a c2m or c2m_group call answered: a = sent at, b = the channel; then a `c2mTs` row. */
  c2m: 2,
  /** The batch's generation time (the poll's ts): a = ts, b = the channel. */
  c2mTs: 3,
  /** A notification received by the process's subscriber: a = the ts at its head (0 when none), b = the Redis channel. */
  note: 4,
  /** A rule's evaluation that may commit, queued: b = the rule. */
  ruleQueued: 5,
  /** A rule's step started (its evaluation): b = the rule. */
  ruleStep: 6,
  /** rule_commit answered: a = sent at, b = the rule. */
  ruleCommit: 7,
  /** A GC pause: time = its start, a = its duration (ms), b = its kind (perf_hooks' NODE_PERFORMANCE_GC_*: 1 scavenge, 4 mark-compact, 8 incremental marking, 16 weak callbacks). The incremental marking's steps inside allocations are not among them. */
  gc: 8,
  /** The 2 ms interval timer ran: a = the process's CPU time so far (ms, user + system), to tell a busy thread from a descheduled one. */
  tick: 9,
} as const;

const ROWS = 1_500_000;
const file = process.env.VOLTAGE_TRACE;
/** Whether the trace is on (VOLTAGE_TRACE set): the hooks test this before anything else. */
export const tracing = file !== undefined && file !== '';

let kind: Uint8Array | undefined;
let time: Float64Array | undefined;
let colA: Float64Array | undefined;
let colB: Float64Array | undefined;
let rows = 0;
const names = new Map<string, number>();
const origin = performance.timeOrigin;

/** Now, epoch ms with µs (performance's monotonic clock from the process's origin). */
export function traceNow(): number {
  return origin + performance.now();
}

export function traceName(name: string): number {
  let n = names.get(name);
  if (n === undefined) {
    n = names.size;
    names.set(name, n);
  }
  return n;
}

export function trace(k: number, t: number, a: number, b: number): void {
  if (!kind || rows >= ROWS) return;
  kind[rows] = k;
  time![rows] = t;
  colA![rows] = a;
  colB![rows] = b;
  rows++;
}

/** The ts at the head of a notification (`{"ts":123,...`), read without allocating; 0 when there is none. */
export function headTs(message: string): number {
  if (!message.startsWith('{"ts":')) return 0;
  let ts = 0;
  for (let i = 6; i < message.length; i++) {
    const c = message.charCodeAt(i) - 48;
    if (c < 0 || c > 9) break;
    ts = ts * 10 + c;
  }
  return ts;
}

if (tracing) {
  kind = new Uint8Array(ROWS);
  time = new Float64Array(ROWS);
  colA = new Float64Array(ROWS);
  colB = new Float64Array(ROWS);
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const detail = (e as { detail?: { kind?: number } }).detail;
      trace(TRACE_KINDS.gc, origin + e.startTime, e.duration, detail?.kind ?? 0);
    }
  }).observe({ entryTypes: ['gc'] });
  setInterval(() => {
    const cpu = process.cpuUsage();
    trace(TRACE_KINDS.tick, traceNow(), (cpu.user + cpu.system) / 1000, 0);
  }, 2).unref();
  process.on('exit', () => {
    const out = {
      kinds: TRACE_KINDS,
      // The monotonic clock (µs, a CPU profile's) against this trace's time, to lay a profile on the trace.
      clock: { hrUs: Number(process.hrtime.bigint() / 1000n), at: traceNow() },
      names: [...names.keys()],
      rows: Array.from({ length: rows }, (_, i) => [kind![i], Math.round(time![i]! * 1000) / 1000, Math.round(colA![i]! * 1000) / 1000, colB![i]]),
    };
    writeFileSync(file!, JSON.stringify(out));
  });
}
