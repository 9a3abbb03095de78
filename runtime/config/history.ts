/**
 * The `history` section of a site config: the databases that keep every value
 * (one writer actor each, actors/history/) and how they are fed and queried.
 *
 * A backend is the embedded VictoriaMetrics (`kind: victoria`, the default) or
 * an InfluxDB 2/3 (`kind: influxdb`). A victoria backend without `url` is the
 * embedded one: `voltage demo` and `voltage start` run a private
 * `victoria-metrics` from PATH for it. An InfluxDB token is never written in
 * the YAML: `tokenEnv` names the environment variable that holds it.
 * Queries (`GET /api/v1/history`) need the Prometheus API, so they go to the
 * first victoria backend.
 */
import { z } from 'zod';

const ID = /^[A-Za-z0-9_-]+$/;

/**
 * What history keeps of one value (a channel point, a model value): set on a
 * point, a channel, a model value, a model or a template, the nearest wins.
 * - `off`: nothing;
 * - `on-change` (default): every value the channel accepted (its deadband applies);
 * - `interval`: the last value of each interval of `intervalMs`, stamped at the
 *   interval's end (a multiple of `intervalMs`): even samples for reports.
 * `maxGapMs` is a heartbeat: an unchanged value is written again at least that
 * often (for interval, at the next interval end), so a flat signal's chart is not empty.
 * Written `history: off`, `history: on-change` or `history: { mode: interval, intervalMs: 60000, maxGapMs: 900000 }`.
 */
export type HistoryKeep =
  | { readonly mode: 'off' }
  | { readonly mode: 'on-change'; readonly maxGapMs?: number }
  | { readonly mode: 'interval'; readonly intervalMs: number; readonly maxGapMs?: number };

export const DEFAULT_KEEP: HistoryKeep = Object.freeze({ mode: 'on-change' });
const KEEP_MODES = ['off', 'on-change', 'interval'] as const;

const keepObject = z.strictObject({
  mode: z.string().default('on-change'),
  intervalMs: z.number().int().min(100).optional().describe('interval: the length of an interval (its last value is kept)'),
  maxGapMs: z.number().int().min(1_000).optional().describe('heartbeat: an unchanged value is written again at least this often'),
});

export const historyKeepSchema = z
  .union([z.string(), keepObject], { error: 'must be off, on-change or a mapping { mode, intervalMs, maxGapMs }' })
  .superRefine((v, ctx) => {
    if (typeof v === 'string') {
      if (v === 'interval') ctx.addIssue({ code: 'custom', message: 'interval needs intervalMs: write history: { mode: interval, intervalMs: 60000 }' });
      else if (!(KEEP_MODES as readonly string[]).includes(v))
        ctx.addIssue({ code: 'custom', message: `must be off, on-change or { mode: interval, intervalMs: … }, not '${v}'` });
      return;
    }
    if (!(KEEP_MODES as readonly string[]).includes(v.mode)) {
      ctx.addIssue({ code: 'custom', path: ['mode'], message: `must be one of ${KEEP_MODES.join(', ')}, not '${v.mode}'` });
      return;
    }
    if (v.mode === 'interval' && v.intervalMs === undefined)
      ctx.addIssue({ code: 'custom', path: ['mode'], message: 'interval needs intervalMs (the length of an interval, e.g. 60000)' });
    if (v.mode !== 'interval' && v.intervalMs !== undefined)
      ctx.addIssue({ code: 'custom', path: ['intervalMs'], message: `intervalMs applies to mode interval only, not to ${v.mode}` });
    if (v.mode === 'off' && v.maxGapMs !== undefined)
      ctx.addIssue({ code: 'custom', path: ['maxGapMs'], message: 'maxGapMs (a heartbeat) means nothing when history is off' });
    if (v.mode === 'interval' && v.intervalMs !== undefined && v.maxGapMs !== undefined && v.maxGapMs < v.intervalMs)
      ctx.addIssue({
        code: 'custom',
        path: ['maxGapMs'],
        message: `maxGapMs (${v.maxGapMs}) must be at least intervalMs (${v.intervalMs}): one value an interval is kept anyway`,
      });
  })
  .transform((v): HistoryKeep => {
    if (typeof v === 'string') return v === 'off' ? { mode: 'off' } : DEFAULT_KEEP;
    if (v.mode === 'off') return { mode: 'off' };
    const gap = v.maxGapMs !== undefined ? { maxGapMs: v.maxGapMs } : {};
    return v.mode === 'interval' ? { mode: 'interval', intervalMs: v.intervalMs!, ...gap } : { mode: 'on-change', ...gap };
  })
  .describe('what history keeps: off, on-change (default) or { mode: interval, intervalMs }, with an optional heartbeat maxGapMs');

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** VictoriaMetrics' -retentionPeriod: months when bare, else hours, days, weeks or years. */
export const RETENTION_PATTERN = /^\d+[hdwy]?$/;

export const historyBackendSchema = z
  .strictObject({
    id: z
      .string()
      .regex(ID, 'must hold only letters, digits, _ and -')
      .describe('names its actor (history/<id>) and its consumer group on the outbox; keep it stable, or a new group writes the whole outbox again'),
    kind: z.enum(['victoria', 'influxdb']).default('victoria'),
    url: z
      .string()
      .regex(/^https?:\/\/[^\s/]+(\/\S*)?$/, 'must be an http(s) URL, e.g. http://127.0.0.1:8428')
      .optional()
      .describe('absent (victoria only): the embedded VictoriaMetrics that voltage starts'),
    org: z.string().min(1).optional().describe('influxdb: the organization'),
    bucket: z.string().min(1).optional().describe("influxdb: the bucket (its retention is the bucket's)"),
    tokenEnv: z
      .string()
      .regex(ENV_NAME, 'must be the NAME of an environment variable (the token itself never goes in the YAML)')
      .optional()
      .describe('influxdb: the environment variable that holds the token'),
  })
  .superRefine((b, ctx) => {
    if (b.kind !== 'influxdb') return;
    const missing = (['url', 'org', 'bucket', 'tokenEnv'] as const).filter((k) => b[k] === undefined);
    if (missing.length > 0) ctx.addIssue({ code: 'custom', path: ['kind'], message: `an influxdb backend needs ${missing.join(', ')}` });
  });

export const historySchema = z
  .strictObject({
    backends: z
      .array(historyBackendSchema)
      .min(1)
      .default([{ id: 'victoria', kind: 'victoria' }]),
    batchMaxEntries: z.number().int().positive().default(500).describe('outbox entries a write (an entry is one poll of a channel)'),
    batchMaxMs: z.number().int().positive().default(200).describe('the longest a live batch waits to fill'),
    windowMs: z
      .number()
      .int()
      .min(10_000)
      .default(10_000)
      .describe('accepted batches written again after the database restarted (VictoriaMetrics loses ~5 s it acknowledged when killed)'),
    drainEntriesPerSecond: z.number().positive().default(5_000).describe('pace of a backlog after an outage; new entries keep flowing'),
    prepareMaxMB: z
      .number()
      .min(0)
      .default(128)
      .describe('while the database is down, the backlog is encoded and gzipped ahead into memory up to this much, sent first once it answers; 0: off'),
    qualityEveryMs: z
      .number()
      .int()
      .min(0)
      .default(60_000)
      .describe(
        "a value's quality is written where it changed and at least this often a series (poll time): read it with last_over_time over this range; 0: on every line",
      ),
    channels: z.boolean().default(true).describe('keep raw channel points'),
    models: z.boolean().default(true).describe('keep model values, calculated ones included'),
    retention: z
      .string()
      .regex(RETENTION_PATTERN, 'must be VictoriaMetrics -retentionPeriod: a number of months, or a number with h, d, w or y (e.g. 1y, 90d)')
      .default('1y')
      .describe('the embedded VictoriaMetrics: one retention for everything'),
    dataDir: z
      .string()
      .min(1)
      .optional()
      .describe(
        "the embedded VictoriaMetrics' data directory, relative to the working directory; voltage start: voltage-history, voltage demo: a temporary one",
      ),
    maxPoints: z.number().int().positive().default(100_000).describe('values one query may answer (series × steps)'),
  })
  .superRefine((h, ctx) => {
    const seen = new Set<string>();
    h.backends.forEach((b, i) => {
      if (seen.has(b.id)) ctx.addIssue({ code: 'custom', path: ['backends', i, 'id'], message: `backend id '${b.id}' is used twice` });
      seen.add(b.id);
    });
    const embedded = h.backends.filter((b) => b.url === undefined);
    if (embedded.length > 1)
      ctx.addIssue({
        code: 'custom',
        path: ['backends', h.backends.indexOf(embedded[1]!), 'id'],
        message: 'only one backend may be the embedded VictoriaMetrics (no url); give the others a url',
      });
  });

export type HistoryBackendConfig = z.output<typeof historyBackendSchema>;
export type HistoryConfig = z.output<typeof historySchema>;

/** The backend queries go to: the first VictoriaMetrics (InfluxDB has no Prometheus query API). */
export function queryBackend(h: HistoryConfig): HistoryBackendConfig | undefined {
  return h.backends.find((b) => b.kind === 'victoria');
}
