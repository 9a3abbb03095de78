/**
 * Tiers: pre-aggregated series beside the raw values, so that a year's chart
 * costs about what a day's does. Two tiers, 1 minute and 1 hour; each bucket
 * (end − size, end] of a channel point or model value becomes one line at
 * `end` with min, max, mean, last, count and sum:
 *
 *   voltage_point_1m,channel=1001,type=m,point=3 min=…,max=…,mean=…,last=…,count=…,sum=… <end>
 *   → voltage_point_1m_min{channel="1001",type="m",point="3"}, …_1m_max, …_1h_mean, …
 *
 * How they are made: from what the database holds, not from what the writer
 * saw. Once the writer has written everything up to a bucket's end (plus
 * TIER_DELAY_MS, for late polls and the database's own flush), it asks the
 * database for the bucket's rollups (1 m from the raw values with one
 * aggr_over_time, 1 h from the 1 m tier), a channel or a model at a time so
 * that no answer outgrows the runtime's heap, and writes them back. So a crash of
 * the writer, a backlog drained late, or a window written again after a
 * database failure cannot leave a tier wrong: a bucket is computed from the
 * stored values, and computing it twice writes the same line (deduplicated).
 * The progress (the last bucket end done, per tier) is kept in Redis.
 *
 * Alarm and command events have no tiers (they are events, not signals).
 * Tiers need the Prometheus query API: VictoriaMetrics backends only.
 */
import { lineHead, METRIC, MEASUREMENT, seriesOfLabels, type SeriesRef } from './outbox.js';

export interface Tier {
  readonly name: '1m' | '1h';
  readonly ms: number;
}
/** Finest first; each is built from the one before (1 h from 1 m), the first from the raw values. */
export const TIERS: readonly Tier[] = [
  { name: '1m', ms: 60_000 },
  { name: '1h', ms: 3_600_000 },
];
/** A bucket is computed this long after its end at the earliest: late polls, the database's flush, an external VictoriaMetrics' -search.latencyOffset (30 s). */
export const TIER_DELAY_MS = 45_000;
export const TIER_FIELDS = ['min', 'max', 'mean', 'last', 'count', 'sum'] as const;
export type TierField = (typeof TIER_FIELDS)[number];

/** The raw kinds that get tiers, with their value metric and measurement. */
const KINDS = [
  { metric: METRIC.pointValue, measurement: MEASUREMENT.point },
  { metric: METRIC.modelValue, measurement: MEASUREMENT.model },
] as const;

/** A tier's metric of one field: voltage_point_1m_min. */
export function tierMetric(r: SeriesRef, tier: Tier['name'], field: TierField): string {
  return `${r.kind === 'point' ? MEASUREMENT.point : MEASUREMENT.model}_${tier}_${field}`;
}

type Rollups = Map<string, { ref: SeriesRef; v: Partial<Record<TierField, number>> }>;

interface PromVector {
  readonly metric: Record<string, string>;
  readonly value: readonly [number, string];
}

async function instant(url: string, query: string, atMs: number, timeoutMs: number): Promise<PromVector[]> {
  const qs = new URLSearchParams({ query, time: String(atMs / 1_000), nocache: '1' });
  const r = await fetch(`${url}/api/v1/query?${qs}`, { signal: AbortSignal.timeout(timeoutMs) });
  const body = (await r.json()) as { status?: string; data?: { result?: PromVector[] }; error?: string };
  if (body.status !== 'success' || !body.data?.result) throw new Error(`the database refused a tier query: ${body.error ?? `HTTP ${r.status}`}`);
  return body.data.result;
}

function collect(into: Rollups, rows: readonly PromVector[], metric: string, field: (labels: Record<string, string>) => TierField | undefined): void {
  for (const row of rows) {
    const f = field(row.metric);
    const ref = f && seriesOfLabels({ ...row.metric, __name__: metric });
    const v = Number(row.value[1]);
    if (!ref || !f || !Number.isFinite(v)) continue;
    const head = lineHead(ref);
    let e = into.get(head);
    if (!e) into.set(head, (e = { ref, v: {} }));
    e.v[f] = v;
  }
}

const ROLLUP_FIELD: Readonly<Record<string, TierField>> = {
  min_over_time: 'min',
  max_over_time: 'max',
  avg_over_time: 'mean',
  last_over_time: 'last',
  count_over_time: 'count',
  sum_over_time: 'sum',
};

/** The values of a label (`channel`, `model`) among a metric's series with samples in (from, to]. */
async function labelValues(url: string, label: string, metric: string, from: number, to: number, timeoutMs: number): Promise<string[]> {
  const qs = new URLSearchParams({ 'match[]': metric, start: String(from / 1_000), end: String(to / 1_000) });
  const r = await fetch(`${url}/api/v1/label/${label}/values?${qs}`, { signal: AbortSignal.timeout(timeoutMs) });
  const body = (await r.json()) as { status?: string; data?: string[]; error?: string };
  if (body.status !== 'success' || !body.data) throw new Error(`the database refused a label query: ${body.error ?? `HTTP ${r.status}`}`);
  return body.data;
}

/**
 * The lines of one bucket (end − tier.ms, end] of `tier`, for every series the
 * database holds values of in it, handed to `write` a channel or a model at a
 * time: a site of 100k points has 200k series, and one answer for all of them
 * (600k rows of JSON) would not fit the runtime's heap. Rejects when the
 * database does not answer.
 */
export async function writeTierBucket(url: string, tier: Tier, end: number, write: (lines: string[]) => Promise<void>, timeoutMs = 30_000): Promise<number> {
  const index = TIERS.indexOf(tier);
  let n = 0;
  for (const k of KINDS) {
    const label = k.metric === METRIC.pointValue ? 'channel' : 'model';
    const source = index === 0 ? k.metric : `${k.measurement}_${TIERS[index - 1]!.name}_count`;
    for (const value of await labelValues(url, label, source, end - tier.ms, end, timeoutMs)) {
      const rollups: Rollups = new Map();
      const sel = `{${label}=${JSON.stringify(value)}}`;
      if (index === 0) {
        const q = `aggr_over_time(("min_over_time","max_over_time","avg_over_time","last_over_time","count_over_time","sum_over_time"), ${k.metric}${sel}[${tier.ms}ms])`;
        collect(rollups, await instant(url, q, end, timeoutMs), k.metric, (l) => ROLLUP_FIELD[l.rollup ?? '']);
      } else {
        const from = `${k.measurement}_${TIERS[index - 1]!.name}`;
        const queries: ReadonlyArray<readonly [TierField, string]> = [
          ['min', `min_over_time(${from}_min${sel}[${tier.ms}ms])`],
          ['max', `max_over_time(${from}_max${sel}[${tier.ms}ms])`],
          ['last', `last_over_time(${from}_last${sel}[${tier.ms}ms])`],
          ['count', `sum_over_time(${from}_count${sel}[${tier.ms}ms])`],
          ['sum', `sum_over_time(${from}_sum${sel}[${tier.ms}ms])`],
        ];
        const answers = await Promise.all(queries.map(([, q]) => instant(url, q, end, timeoutMs)));
        for (const [i, [f]] of queries.entries()) collect(rollups, answers[i]!, k.metric, () => f);
      }
      const lines: string[] = [];
      for (const [head, { v }] of rollups) {
        if (v.count === undefined || v.count <= 0 || v.sum === undefined) continue;
        if (v.mean === undefined) v.mean = v.sum / v.count;
        const fields = TIER_FIELDS.filter((f) => v[f] !== undefined).map((f) => `${f}=${String(v[f])}`);
        const i = head.indexOf(',');
        lines.push(`${head.slice(0, i)}_${tier.name}${head.slice(i)} ${fields.join(',')} ${end}`);
      }
      if (lines.length > 0) await write(lines);
      n += lines.length;
    }
  }
  return n;
}

/** Where each tier stands: the end of the last bucket written (epoch ms). */
export type TierMarks = Record<Tier['name'], number>;

/**
 * The buckets due, finest tier first, at most `max` of them: a tier's next
 * bucket is due once its end is at or before `through` (what the writer has
 * written, less the delay) and, for a coarser tier, at or before the finer
 * tier's mark as it was before this check (the writer checks every 5 s, so
 * those buckets are searchable by then).
 */
export function dueBuckets(marks: TierMarks, through: number, max: number): Array<{ tier: Tier; end: number }> {
  const out: Array<{ tier: Tier; end: number }> = [];
  const next = { ...marks };
  for (const [i, tier] of TIERS.entries()) {
    // A coarser tier waits for the finer tier's buckets of an earlier check: what was written just now may not be searchable yet.
    const limit = i === 0 ? through : marks[TIERS[i - 1]!.name];
    for (let end = next[tier.name] + tier.ms; end <= limit && out.length < max; end += tier.ms) {
      out.push({ tier, end });
      next[tier.name] = end;
    }
  }
  return out;
}

/** The first marks of a backend that has none: the bucket before `from` (the oldest value it will write). */
export function initialMarks(from: number): TierMarks {
  const marks = {} as TierMarks;
  for (const t of TIERS) marks[t.name] = Math.floor(from / t.ms) * t.ms;
  return marks;
}
