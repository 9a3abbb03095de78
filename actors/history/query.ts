/**
 * History queries over the database's Prometheus-compatible query API
 * (VictoriaMetrics' /api/v1/query_range and /api/v1/series): what
 * `GET /api/v1/history` and `GET /api/v1/history/series` answer.
 *
 * Semantics (the README documents them):
 * - `series`: comma-separated series ids (outbox.ts: `model/pv1/P`, `channel/1001/m/3`).
 * - `from`, `to`: ISO 8601, epoch milliseconds, `now`, or relative to now (`-24h`,
 *   `-15m`, `-30s`, `-7d`, `-2w`). Defaults: to = now, from = to − 1 h.
 * - `step`: `500ms`, `60s`, `5m`, `1h`, `1d` (a bare number is seconds). Default:
 *   the range over 600 points, at least 1 s.
 * - `agg`: mean (default), min, max, last, count.
 * - The answer's timestamps are the multiples of `step` within [from, to]; the
 *   value at t aggregates the samples in (t − step, t], as Prometheus does, with
 *   null where there is none (count: 0). One timestamp array, one value array a series.
 * - At most `maxPoints` values an answer (series × timestamps): beyond it a
 *   TOO_MANY_POINTS error (400) that says which step would fit.
 * - Tiers (tiers.ts): a step that is a multiple of 1 h is answered from the
 *   1 h tier, else a multiple of 1 m from the 1 m tier, else from the raw
 *   values; the answer's `tier` says which. A bucket of the tier holds exactly
 *   the raw values of (end − size, end], so the answer is the same, only
 *   cheaper. The last steps, whose buckets the writer has not aggregated yet
 *   (ending within TIER_DELAY_MS + 60 s of now), come from the raw values.
 *   Channel points and model values have tiers; alarm and command events do not.
 *
 * It never writes and never caches values: the database answers every query.
 */
import { VoltageError } from '../../runtime/errors.js';
import { parseSeriesId, promLabels, promSelector, seriesId, seriesOfLabels, METRIC, OutboxFormatError, type SeriesRef } from './outbox.js';
import { TIER_DELAY_MS, tierMetric, TIERS, type Tier } from './tiers.js';

export type Agg = 'mean' | 'min' | 'max' | 'last' | 'count';
export const AGGS: readonly Agg[] = ['mean', 'min', 'max', 'last', 'count'];
const ROLLUP: Readonly<Record<Agg, string>> = {
  mean: 'avg_over_time',
  min: 'min_over_time',
  max: 'max_over_time',
  last: 'last_over_time',
  count: 'count_over_time',
};

export type HistoryErrorCode = 'BAD_QUERY' | 'UNKNOWN_SERIES' | 'REVERSED_RANGE' | 'TOO_MANY_POINTS' | 'HISTORY_UNAVAILABLE';
const STATUS: Readonly<Record<HistoryErrorCode, number>> = {
  BAD_QUERY: 400,
  UNKNOWN_SERIES: 404,
  REVERSED_RANGE: 400,
  TOO_MANY_POINTS: 400,
  HISTORY_UNAVAILABLE: 503,
};

/** A query that cannot be answered; `status` is the HTTP status the route answers with. */
export class HistoryQueryError extends VoltageError {
  readonly status: number;
  constructor(code: HistoryErrorCode, message: string) {
    super('api', code, message);
    this.name = 'HistoryQueryError';
    this.status = STATUS[code];
  }
}

/** The query as it comes from the URL: strings, unchecked. */
export interface HistoryParams {
  readonly series?: string | null;
  readonly from?: string | null;
  readonly to?: string | null;
  readonly step?: string | null;
  readonly agg?: string | null;
}

export interface HistoryAnswer {
  readonly from: number;
  readonly to: number;
  readonly stepMs: number;
  readonly agg: Agg;
  /** Where the channel points and model values came from: the raw values or a tier. */
  readonly tier: 'raw' | Tier['name'];
  /** Epoch ms, shared by every series. */
  readonly timestamps: readonly number[];
  readonly series: ReadonlyArray<{ readonly id: string; readonly values: ReadonlyArray<number | null> }>;
}

export interface HistoryQueryOptions {
  /** The database's base URL (VictoriaMetrics: http://host:8428). */
  readonly url: string;
  /** Values an answer may hold (series × timestamps). */
  readonly maxPoints?: number;
  readonly timeoutMs?: number;
  readonly now?: () => number;
  /** Answer coarse steps from the tiers (default true: the writer of a VictoriaMetrics backend writes them). */
  readonly tiers?: boolean;
}

/** The coarsest tier whose buckets tile a step exactly. */
export function tierFor(stepMs: number): Tier | undefined {
  return [...TIERS].reverse().find((t) => stepMs % t.ms === 0);
}

/** The PromQL of one aggregate over a step, from a tier's fields. */
function tierQuery(ref: SeriesRef, tier: Tier, agg: Agg, stepMs: number): string {
  const sel = (f: Parameters<typeof tierMetric>[2]) => `${tierMetric(ref, tier.name, f)}${promLabels(ref)}[${stepMs}ms]`;
  switch (agg) {
    case 'mean':
      return `sum_over_time(${sel('sum')}) / sum_over_time(${sel('count')})`;
    case 'count':
      return `sum_over_time(${sel('count')})`;
    default:
      return `${ROLLUP[agg]}(${sel(agg)})`;
  }
}

const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };
const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h|d|w)$/;

/** `60s`, `500ms`, `1.5h`; a bare number is seconds. */
export function parseDuration(text: string, what: string): number {
  const bare = /^\d+(?:\.\d+)?$/.test(text) ? Number(text) * 1_000 : undefined;
  const m = DURATION.exec(text);
  const ms = bare ?? (m ? Number(m[1]) * UNIT_MS[m[2]!]! : NaN);
  if (!Number.isFinite(ms) || ms <= 0) throw new HistoryQueryError('BAD_QUERY', `${what} '${text}' is not a duration such as 500ms, 60s, 5m, 1h or 1d`);
  return Math.round(ms);
}

/** ISO 8601, epoch ms, `now`, or `-<duration>` before now. */
export function parseTime(text: string, now: number, what: string): number {
  if (text === 'now') return now;
  if (text.startsWith('-')) return now - parseDuration(text.slice(1), what);
  if (/^\d{10,}$/.test(text)) return Number(text);
  // Date.parse also takes "1" or "May 3"; require at least a calendar date.
  const ms = /^\d{4}-\d{2}-\d{2}/.test(text) ? Date.parse(text) : NaN;
  if (!Number.isFinite(ms))
    throw new HistoryQueryError('BAD_QUERY', `${what} '${text}' is not a time: use ISO 8601 (2024-05-01T12:00:00Z), epoch ms, now, or relative (-24h)`);
  return ms;
}

interface PromMatrix {
  readonly metric: Record<string, string>;
  readonly values: ReadonlyArray<readonly [number, string]>;
}

/**
 * The start of every series search: 1 s after the epoch. VictoriaMetrics reads `start=0` as no start and
 * searches the last day only, so after midnight UTC a series written only the day before was unknown.
 */
const SERIES_SEARCH_START = '1';

export class HistoryQueries {
  readonly maxPoints: number;
  private readonly url: string;
  private readonly timeoutMs: number;
  private readonly now: () => number;

  constructor(opts: HistoryQueryOptions) {
    this.url = opts.url.replace(/\/+$/, '');
    this.maxPoints = opts.maxPoints ?? 100_000;
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.now = opts.now ?? Date.now;
    this.tiers = opts.tiers ?? true;
  }
  private readonly tiers: boolean;

  /** Checks the parameters, then asks the database for every series at once. */
  async query(p: HistoryParams): Promise<HistoryAnswer> {
    const ids = (p.series ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '');
    if (ids.length === 0)
      throw new HistoryQueryError('BAD_QUERY', 'name at least one series: series=model/pv1/P,channel/1001/m/3 (GET /api/v1/history/series lists them)');
    const refs = ids.map((id) => {
      try {
        return parseSeriesId(id);
      } catch (e) {
        throw new HistoryQueryError('BAD_QUERY', e instanceof OutboxFormatError ? e.message : String(e));
      }
    });
    const agg = (p.agg ?? 'mean') as Agg;
    if (!AGGS.includes(agg)) throw new HistoryQueryError('BAD_QUERY', `agg '${p.agg}' is not one of ${AGGS.join(', ')}`);
    const now = this.now();
    const to = p.to ? parseTime(p.to, now, 'to') : now;
    const from = p.from ? parseTime(p.from, now, 'from') : to - 3_600_000;
    if (from > to) throw new HistoryQueryError('REVERSED_RANGE', `from (${new Date(from).toISOString()}) is after to (${new Date(to).toISOString()})`);
    const stepMs = p.step ? parseDuration(p.step, 'step') : Math.max(1_000, Math.ceil((to - from) / 600 / 1_000) * 1_000);
    const first = Math.ceil(from / stepMs) * stepMs;
    const last = Math.floor(to / stepMs) * stepMs;
    const count = last >= first ? (last - first) / stepMs + 1 : 0;
    if (count === 0) {
      throw new HistoryQueryError(
        'BAD_QUERY',
        `no step of ${stepMs} ms falls within the range (${new Date(from).toISOString()} to ${new Date(to).toISOString()}): use a shorter step or a longer range`,
      );
    }
    if (count * refs.length > this.maxPoints) {
      const fits = Math.ceil(((to - from) * refs.length) / this.maxPoints / 1_000);
      throw new HistoryQueryError(
        'TOO_MANY_POINTS',
        `${refs.length} series × ${count} steps of ${stepMs} ms is ${count * refs.length} values; at most ${this.maxPoints} an answer: use a step of at least ${fits}s or a shorter range`,
      );
    }
    await this.checkKnown(refs);
    const timestamps = Array.from({ length: count }, (_, i) => first + i * stepMs);
    const tier = this.tiers ? tierFor(stepMs) : undefined;
    // Steps ending after this are not aggregated yet: raw.
    const tiered = Math.min(last, Math.floor((now - TIER_DELAY_MS - 60_000) / stepMs) * stepMs);
    const series = await Promise.all(
      refs.map(async (ref, i) => {
        const values: Array<number | null> = new Array<number | null>(count).fill(agg === 'count' ? 0 : null);
        const put = (result: readonly PromMatrix[]) => {
          for (const r of result) {
            for (const [t, v] of r.values) {
              const k = Math.round((t * 1_000 - first) / stepMs);
              const n = Number(v);
              if (k >= 0 && k < count && Number.isFinite(n)) values[k] = n;
            }
          }
        };
        if (count === 0) return { id: ids[i]!, values };
        const useTier = tier !== undefined && (ref.kind === 'point' || ref.kind === 'model') && tiered >= first;
        const rawFrom = useTier ? tiered + stepMs : first;
        const parts: Array<Promise<void>> = [];
        if (useTier) parts.push(this.range(tierQuery(ref, tier, agg, stepMs), first, tiered, stepMs).then(put));
        if (rawFrom <= last) parts.push(this.range(`${ROLLUP[agg]}(${promSelector(ref)}[${stepMs}ms])`, rawFrom, last, stepMs).then(put));
        await Promise.all(parts);
        return { id: ids[i]!, values };
      }),
    );
    return { from, to, stepMs, agg, tier: tier && tiered >= first ? tier.name : 'raw', timestamps, series };
  }

  /** Every series the database holds, as sorted ids. */
  async list(): Promise<string[]> {
    const data = await this.get<Array<Record<string, string>>>('/api/v1/series', [
      ['match[]', `{__name__=~"${METRIC.pointValue}|${METRIC.modelValue}|${METRIC.alarmValue}|${METRIC.commandValue}"}`],
      ['start', SERIES_SEARCH_START],
      ['end', String(this.now() / 1_000)],
    ]);
    const ids = new Set<string>();
    for (const labels of data) {
      const ref = seriesOfLabels(labels);
      if (ref) ids.add(seriesId(ref));
    }
    return [...ids].sort();
  }

  private async checkKnown(refs: readonly SeriesRef[]): Promise<void> {
    const params: Array<[string, string]> = refs.map((r) => ['match[]', promSelector(r)]);
    // A series whose raw values are gone (retention, a backfill of tiers only) is still known by its tiers.
    for (const r of refs) if (r.kind === 'point' || r.kind === 'model') params.push(['match[]', `${tierMetric(r, '1h', 'count')}${promLabels(r)}`]);
    params.push(['start', SERIES_SEARCH_START], ['end', String(this.now() / 1_000)]);
    const data = await this.get<Array<Record<string, string>>>('/api/v1/series', params);
    const known = new Set(
      data
        .map((l) => seriesOfLabels({ ...l, __name__: (l.__name__ ?? '').replace(/_1h_count$/, '_value') }))
        .filter((r): r is SeriesRef => r !== undefined)
        .map(seriesId),
    );
    const unknown = refs.map(seriesId).filter((id) => !known.has(id));
    if (unknown.length > 0)
      throw new HistoryQueryError('UNKNOWN_SERIES', `no history for ${unknown.join(', ')} (GET /api/v1/history/series lists what there is)`);
  }

  private range(query: string, startMs: number, endMs: number, stepMs: number): Promise<PromMatrix[]> {
    return this.get<{ result: PromMatrix[] }>('/api/v1/query_range', [
      ['query', query],
      ['start', String(startMs / 1_000)],
      ['end', String(endMs / 1_000)],
      ['step', String(stepMs / 1_000)],
    ]).then((d) => d.result);
  }

  private async get<T>(path: string, params: ReadonlyArray<readonly [string, string]>): Promise<T> {
    const qs = new URLSearchParams(params.map(([k, v]) => [k, v]));
    let body: { status?: string; data?: T; error?: string };
    try {
      const r = await fetch(`${this.url}${path}?${qs}`, { signal: AbortSignal.timeout(this.timeoutMs) });
      body = (await r.json()) as typeof body;
      if (!r.ok && body.status !== 'error') throw new Error(`HTTP ${r.status}`);
    } catch (e) {
      throw new HistoryQueryError('HISTORY_UNAVAILABLE', `the history database at ${this.url} did not answer: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (body.status !== 'success' || body.data === undefined)
      throw new HistoryQueryError('HISTORY_UNAVAILABLE', `the history database refused the query: ${body.error ?? 'no data'}`);
    return body.data;
  }
}

const csvCell = (s: string) => (/[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);

/** The same answer as CSV: a `time` column (ISO 8601) and one column a series, empty for a gap. */
export function historyCsv(a: HistoryAnswer): string {
  const lines = [['time', ...a.series.map((s) => s.id)].map(csvCell).join(',')];
  for (let i = 0; i < a.timestamps.length; i++) {
    lines.push([new Date(a.timestamps[i]!).toISOString(), ...a.series.map((s) => (s.values[i] === null ? '' : String(s.values[i])))].join(','));
  }
  return `${lines.join('\r\n')}\r\n`;
}
