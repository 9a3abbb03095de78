/**
 * Alarms over the gateway:
 *   GET  /api/v1/alarms                 ?state=a,b &severity= &model= &active=true &limit= &offset=
 *   GET  /api/v1/alarms/{id}            definition, state, event history
 *   POST /api/v1/alarms/{id}/{action}   ack | shelve | unshelve | reset | suppress | unsuppress | out-of-service | in-service,
 *                                       {comment, durationMs?} (operator); audited like commands; 409 names the state
 *   GET  /api/v1/alarms/events          ?limit= &before= &id= (paged, newest first); Accept: text/csv (or ?format=csv)
 *   GET  /api/v1/alarms/stats           KPIs over the last 24 h (ISA-18.2 performance measures)
 * and the WebSocket topic `alarm/all` (matched by `alarm/*`): the active alarms first, then every change.
 */
import { z } from 'zod';
import type { AlarmEvent } from '../../../machines/alarmMachine.js';
import { ALARM_STATES, SEVERITIES } from '../../../machines/alarmMachine.js';
import { AlarmRefusedError, type AlarmEventEntry, type AlarmRecord } from '../../redis/alarms.js';
import { KEYS } from '../../redis/keys.js';
import type { Subscriptions } from '../../redis/subscriptions.js';
import type { VoltageRedis } from '../../redis/voltageRedis.js';
import { ApiError, type Http } from '../http.js';
import type { TelemetryFeed } from '../ws.js';
import { report } from '../../reporter.js';

export const ALARM_TOPIC = 'alarm/all';
const DAY_MS = 86_400_000;

export const alarmActionBody = z.strictObject({
  comment: z.string().max(500).optional().describe('why; required to shelve, suppress or take out of service'),
  durationMs: z
    .number()
    .int()
    .positive()
    .max(30 * DAY_MS)
    .optional()
    .describe('shelve only: automatic unshelve after this long (none: until the next return to normal)'),
});

/** The path's action → the machine's event, and whether a comment is required. */
const ACTIONS: Readonly<Record<string, { readonly event: AlarmEvent['type']; readonly comment: boolean }>> = {
  ack: { event: 'ACK', comment: false },
  shelve: { event: 'SHELVE', comment: true },
  unshelve: { event: 'UNSHELVE', comment: false },
  reset: { event: 'RESET', comment: false },
  suppress: { event: 'SUPPRESS', comment: true },
  unsuppress: { event: 'UNSUPPRESS', comment: false },
  'out-of-service': { event: 'OUT_OF_SERVICE', comment: true },
  'in-service': { event: 'IN_SERVICE', comment: false },
};
export const ALARM_ACTIONS = Object.keys(ACTIONS);

export interface AlarmView {
  readonly id: string;
  readonly model: string;
  readonly state: string;
  readonly severity: string;
  readonly active: boolean;
  readonly message: string;
  readonly value: number | null;
  readonly since: number;
  readonly updatedAt: number;
  readonly who: string;
  readonly why: string;
  readonly group: string | null;
  readonly chattering: boolean;
  readonly version: number;
  readonly shelvedUntil: number | null;
}

const ACTIVE_STATES = new Set(['unacknowledged', 'acknowledged', 'returnedUnack', 'latched']);

export function alarmView(r: AlarmRecord): AlarmView {
  let def: { model?: string; message?: string; when?: { above?: number; below?: number } } = {};
  try {
    def = JSON.parse(r.definition) as typeof def;
  } catch {
    /* an alarm initialised without a definition */
  }
  const limit = def.when?.above ?? def.when?.below;
  const message = (def.message ?? r.id)
    .replaceAll('{value}', r.value === null ? '-' : String(Math.round(r.value * 100) / 100))
    .replaceAll('{limit}', limit === undefined ? '-' : String(limit))
    .replaceAll('{model}', def.model ?? '')
    .replaceAll('{id}', r.id);
  return {
    id: r.id,
    model: def.model ?? '',
    state: r.state,
    severity: r.severity,
    active: ACTIVE_STATES.has(r.state),
    message,
    value: r.value,
    since: r.since,
    updatedAt: r.updatedAt,
    who: r.who,
    why: r.why,
    group: r.group || null,
    chattering: r.chattering,
    version: r.version,
    shelvedUntil: r.context.shelvedUntil,
  };
}

function csv(events: readonly AlarmEventEntry[]): string {
  const cols = ['time', 'id', 'event', 'from', 'to', 'severity', 'who', 'why', 'value', 'version', 'group'] as const;
  const cell = (v: string | number) => {
    const s = String(v);
    return /[",\n\r]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
  };
  return `${[cols.join(','), ...events.map((e) => cols.map((c) => cell(e[c])).join(','))].join('\n')}\n`;
}

const intParam = (q: URLSearchParams, name: string, dflt: number, max: number): number => {
  const raw = q.get(name);
  if (raw === null) return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > max) throw new ApiError(400, 'BAD_QUERY', `${name} must be an integer from 0 to ${max}, not '${raw}'`);
  return n;
};

/** Time in flood within [from, to]: flood holds from the (count+1)th raise within windowMs until the oldest of them leaves the window. */
export function floodMs(raises: readonly number[], count: number, windowMs: number, from: number, to: number): number {
  let total = 0;
  let coveredUntil = from;
  for (let i = count; i < raises.length; i++) {
    if (raises[i]! - raises[i - count]! >= windowMs) continue;
    const start = Math.max(raises[i]!, coveredUntil);
    const end = Math.min(raises[i - count]! + windowMs, to);
    if (end > start) {
      total += end - start;
      coveredUntil = end;
    }
  }
  return total;
}

export type AlarmStats = Awaited<ReturnType<typeof alarmStats>>;

/** The ISA-18.2 performance measures over the last 24 h, from alarm:events and the alarms as stored. */
export async function alarmStats(redis: VoltageRedis, now: number = Date.now()) {
  const [records, events, stats] = await Promise.all([redis.alarms.list(), redis.alarms.eventsSince(now - DAY_MS), redis.alarms.stats()]);
  const floodCount = Number(stats.floodCount ?? 10);
  const floodWindowMs = Number(stats.floodWindowMs ?? 600_000);
  // An annunciation: the condition made the alarm unacknowledged (a raise or a re-alarm).
  const raises = events.filter((e) => e.event === 'CONDITION_ON' && e.to === 'unacknowledged');
  const times = raises.map((e) => Number(e.entryId.split('-')[0]));
  const lastWindow = times.filter((t) => t > now - floodWindowMs).length;
  const byAlarm = new Map<string, number>();
  for (const e of raises) byAlarm.set(e.id, (byAlarm.get(e.id) ?? 0) + 1);
  const views = records.map(alarmView);
  const active = views.filter((v) => v.active);
  const inFloodMs = floodMs(times, floodCount, floodWindowMs, now - DAY_MS, now);
  return {
    alarmsPer10Min: { last: times.filter((t) => t > now - 600_000).length, average24h: Math.round((times.length / 144) * 100) / 100 },
    flood: { active: lastWindow > floodCount, newInWindow: lastWindow, count: floodCount, windowMs: floodWindowMs },
    timeInFloodMs24h: inFloodMs,
    percentTimeInFlood24h: Math.round((inFloodMs / DAY_MS) * 1_000_000) / 10_000,
    top10: [...byAlarm]
      .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
      .slice(0, 10)
      .map(([id, count]) => ({ id, count })),
    chattering: views.filter((v) => v.chattering && v.active).map((v) => v.id),
    standingOver24h: active.filter((v) => v.since < now - DAY_MS).map((v) => v.id),
    bySeverity: Object.fromEntries(SEVERITIES.map((s) => [s, active.filter((v) => v.severity === s).length])),
    active: active.length,
    total: views.length,
  };
}

/** The same measures as Prometheus lines, for /metrics. */
export function alarmMetricLines(s: AlarmStats): string[] {
  return [
    '# HELP voltage_alarms_active Active alarms by severity',
    '# TYPE voltage_alarms_active gauge',
    ...Object.entries(s.bySeverity).map(([sev, n]) => `voltage_alarms_active{severity="${sev}"} ${n}`),
    '# HELP voltage_alarms_per_10min Alarms announced in the last 10 minutes',
    '# TYPE voltage_alarms_per_10min gauge',
    `voltage_alarms_per_10min ${s.alarmsPer10Min.last}`,
    '# HELP voltage_alarm_flood 1 while more than the flood count of new alarms fall within the flood window',
    '# TYPE voltage_alarm_flood gauge',
    `voltage_alarm_flood ${s.flood.active ? 1 : 0}`,
    '# HELP voltage_alarm_time_in_flood_ratio Share of the last 24 h in flood',
    '# TYPE voltage_alarm_time_in_flood_ratio gauge',
    `voltage_alarm_time_in_flood_ratio ${(s.timeInFloodMs24h / DAY_MS).toFixed(6)}`,
    '# HELP voltage_alarms_chattering Active alarms marked chattering',
    '# TYPE voltage_alarms_chattering gauge',
    `voltage_alarms_chattering ${s.chattering.length}`,
    '# HELP voltage_alarms_standing Active alarms standing for more than 24 h',
    '# TYPE voltage_alarms_standing gauge',
    `voltage_alarms_standing ${s.standingOver24h.length}`,
  ];
}

/** Registers the routes and the `alarm/all` topic; returns what stops the feed. */
export async function alarmRoutes(http: Http, redis: VoltageRedis, subs: Subscriptions, feed: TelemetryFeed): Promise<() => Promise<void>> {
  http.route('get', '/api/v1/alarms/events', 'viewer', async ({ query, accept }) => {
    const limit = intParam(query, 'limit', 100, 10_000) || 100;
    const before = query.get('before') ?? undefined;
    if (before !== undefined && !/^\d+-\d+$/.test(before)) throw new ApiError(400, 'BAD_QUERY', `before must be an event's entryId (ms-seq), not '${before}'`);
    const events = await redis.alarms.events(limit, before, query.get('id') ?? undefined);
    if (accept.includes('text/csv') || query.get('format') === 'csv') return { status: 200, body: csv(events), contentType: 'text/csv; charset=utf-8' };
    return { status: 200, body: { events, next: events.length === limit ? events[events.length - 1]!.entryId : null } };
  });

  http.route('get', '/api/v1/alarms/stats', 'viewer', async () => ({ status: 200, body: await alarmStats(redis) }));

  http.route('get', '/api/v1/alarms', 'viewer', async ({ query }) => {
    const states = query.get('state')?.split(',').filter(Boolean);
    if (states?.some((s) => !(ALARM_STATES as readonly string[]).includes(s)))
      throw new ApiError(400, 'BAD_QUERY', `state must be among ${ALARM_STATES.join(', ')}`);
    const severity = query.get('severity')?.split(',').filter(Boolean);
    if (severity?.some((s) => !(SEVERITIES as readonly string[]).includes(s)))
      throw new ApiError(400, 'BAD_QUERY', `severity must be among ${SEVERITIES.join(', ')}`);
    const model = query.get('model');
    const active = query.get('active');
    if (active !== null && active !== 'true')
      throw new ApiError(400, 'BAD_QUERY', `active takes only true (the active alarms), not '${active}'; leave it out for all of them`);
    const activeOnly = active === 'true';
    const limit = intParam(query, 'limit', 100, 1000) || 100;
    const offset = intParam(query, 'offset', 0, 1_000_000);
    const all = (await redis.alarms.list())
      .map(alarmView)
      .filter(
        (v) =>
          (!states || states.includes(v.state)) && (!severity || severity.includes(v.severity)) && (!model || v.model === model) && (!activeOnly || v.active),
      );
    return { status: 200, body: { total: all.length, offset, limit, alarms: all.slice(offset, offset + limit) } };
  });

  http.route('get', '/api/v1/alarms/:id', 'viewer', async ({ params }) => {
    const r = await redis.alarms.get(params[0]!);
    if (!r) throw new ApiError(404, 'NOT_FOUND', `no alarm '${params[0]}'`);
    let definition: unknown = null;
    try {
      definition = JSON.parse(r.definition);
    } catch {
      /* none stored */
    }
    return { status: 200, body: { ...alarmView(r), definition, context: r.context, history: await redis.alarms.events(100, undefined, r.id) } };
  });

  // One route per action (the router takes consecutive parameters for one id with a slash, as for actors).
  for (const [action, spec] of Object.entries(ACTIONS))
    http.route('post', `/api/v1/alarms/:id/${action}`, 'operator', async ({ params, body, caller }) => {
      const id = params[0]!;
      const who = caller?.name ?? 'unknown';
      const audit = (outcome: string, message: string) =>
        redis.commands.auditAction(`alarm.${action}`, id, who, outcome, message).catch((e: unknown) => report(e, { source: 'alarm audit', alarm: id }));
      const parsed = alarmActionBody.safeParse(body ?? {});
      const problem = !parsed.success
        ? parsed.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ')
        : spec.comment && !parsed.data.comment
          ? `${action} needs a comment (why)`
          : parsed.data.durationMs !== undefined && action !== 'shelve'
            ? 'durationMs applies to shelve only'
            : undefined;
      if (problem || !parsed.success) {
        await audit('rejected', problem ?? 'bad body');
        throw new ApiError(400, 'BAD_REQUEST', problem ?? 'bad body');
      }
      const now = Date.now();
      const event: AlarmEvent =
        spec.event === 'SHELVE'
          ? parsed.data.durationMs !== undefined
            ? { type: 'SHELVE', now, durationMs: parsed.data.durationMs }
            : { type: 'SHELVE', now, oneShot: true }
          : ({ type: spec.event, now } as AlarmEvent);
      try {
        const r = await redis.alarms.act(id, event, who, parsed.data.comment ?? '');
        await audit('accepted', parsed.data.comment ?? '');
        return { status: 200, body: alarmView(r) };
      } catch (e) {
        if (!(e instanceof AlarmRefusedError)) throw e;
        await audit('rejected', e.message);
        if (e.refusal === 'NO_ALARM') throw new ApiError(404, 'NOT_FOUND', `no alarm '${id}'`);
        if (e.refusal === 'NOT_ALLOWED') throw new ApiError(409, 'NOT_ALLOWED', `alarm '${id}' is ${e.state}: ${action} is not allowed in state ${e.state}`);
        if (e.refusal === 'VERSION_CONFLICT')
          throw new ApiError(409, 'CONFLICT', `alarm '${id}' was changed meanwhile; it is now ${e.state} (version ${e.version})`);
        throw new ApiError(400, 'BAD_REQUEST', e.message);
      }
    });

  // The feed: one topic; the active alarms as its snapshot, then every committed change, in commit order.
  const snapshot = async () => {
    const views = (await redis.alarms.records((await redis.alarms.active()).map((a) => a.id))).map(alarmView);
    return JSON.stringify({ topic: ALARM_TOPIC, ts: Date.now(), snapshot: true, alarms: views });
  };
  feed.addSource({ topics: () => [ALARM_TOPIC], owns: (t) => t === ALARM_TOPIC, snapshot: () => snapshot() });
  let chain: Promise<void> = Promise.resolve();
  const unsubscribe = await subs.on(KEYS.alarmUpdate, (message) => {
    let m: { id?: unknown; event?: unknown; from?: unknown };
    try {
      m = JSON.parse(message) as typeof m;
    } catch {
      return;
    }
    if (typeof m.id !== 'string' || http.app.numSubscribers(ALARM_TOPIC) === 0) return;
    const id = m.id;
    chain = chain
      .then(async () => {
        const r = await redis.alarms.get(id);
        if (r) http.app.publish(ALARM_TOPIC, JSON.stringify({ topic: ALARM_TOPIC, ts: Date.now(), event: m.event, from: m.from, alarm: alarmView(r) }));
      })
      .catch((e: unknown) => report(e, { source: 'alarm feed', alarm: id }));
  });
  return unsubscribe;
}
