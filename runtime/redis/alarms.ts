/**
 * Alarms in Redis (lua/alarms.lua): creating an alarm or resuming the stored one
 * (alarm_init), committing one transition with compare-and-set (alarm_commit),
 * and reading what the API, the CLI and the WebSocket show: one alarm, the
 * list, the active set, the event stream, the site-wide indicators.
 *
 * A refusal of alarm_commit comes back as an AlarmRefusedError with a stable
 * code and the stored state and version, so that an API can answer 409 naming
 * the state. Also kept here, outside any transition: each alarm's delay filter
 * (`alarm:filters`, absolute deadlines, so a restart resumes an on- or
 * off-delay) and the indicators of `alarm:stats` (flood, chattering, KPIs).
 */
import { ALARM_STATES, stepAlarm, stepReason, type AlarmContext, type AlarmEvent, type AlarmState, type Severity } from '../../machines/alarmMachine.js';
import { RedisFunctionError, VoltageError } from '../errors.js';
import { closeRedis } from './connect.js';
import { RedisCore, redisCall, type FunctionInputs } from './core.js';
import { fieldsOf } from './encoding.js';
import { KEYS } from './keys.js';
import type { OutboxLimits } from './telemetry.js';

export type AlarmRefusal = 'NO_ALARM' | 'VERSION_CONFLICT' | 'NOT_ALLOWED' | 'BAD_ARGUMENT';

/** alarm_commit refused: nothing was written. `state` and `version` are what Redis holds now. */
export class AlarmRefusedError extends VoltageError {
  readonly refusal: AlarmRefusal;
  readonly state: AlarmState | 'none';
  readonly version: number;
  constructor(refusal: AlarmRefusal, message: string, state: AlarmState | 'none', version: number, options?: { cause?: unknown }) {
    super('redis', `ALARM_${refusal}`, message, { refusal, state, version }, options);
    this.name = 'AlarmRefusedError';
    this.refusal = refusal;
    this.state = state;
    this.version = version;
  }
}

/** Reads a refusal out of a Function's error message; undefined when it is some other error. */
export function parseAlarmRefusal(message: string, cause?: unknown): AlarmRefusedError | undefined {
  const m = /alarm_commit: (NO_ALARM|VERSION_CONFLICT|NOT_ALLOWED|BAD_ARGUMENT) (.*) \[state=([\w-]+) version=(\d+)\]/.exec(message);
  if (!m) return undefined;
  const state = ALARM_STATES.includes(m[3] as AlarmState) ? (m[3] as AlarmState) : 'none';
  return new AlarmRefusedError(m[1] as AlarmRefusal, m[2]!, state, Number(m[4]), { cause });
}

export interface AlarmInitArgs {
  readonly id: string;
  readonly ts: number;
  readonly severity: Severity;
  readonly context: AlarmContext;
  /** The alarm's definition as JSON, kept beside its state for the API. */
  readonly definition: string;
}

export interface StoredAlarm {
  readonly created: boolean;
  readonly state: AlarmState;
  readonly version: number;
  readonly context: AlarmContext;
}

/** One transition to commit (the inputs of alarm_commit, runtime/redis/core.ts); group and chattering default to none. */
export type AlarmCommitArgs = Omit<FunctionInputs['alarm_commit'], 'group' | 'chattering' | 'outboxMaxBytes'> & {
  /** First-out: the id of the first alarm of the group this one joins ('' none). */
  readonly group?: string;
  readonly chattering?: boolean;
};

export interface AlarmRecord {
  readonly id: string;
  readonly state: AlarmState;
  readonly version: number;
  readonly severity: Severity;
  readonly context: AlarmContext;
  readonly definition: string;
  readonly since: number;
  readonly updatedAt: number;
  readonly who: string;
  readonly why: string;
  readonly value: number | null;
  readonly group: string;
  readonly chattering: boolean;
}

export interface AlarmEventEntry {
  /** The stream entry id: the cursor for the next page. */
  readonly entryId: string;
  readonly id: string;
  readonly event: string;
  readonly from: string;
  readonly to: string;
  readonly severity: string;
  readonly who: string;
  readonly why: string;
  readonly value: string;
  readonly time: number;
  readonly version: number;
  readonly group: string;
}

function recordOf(h: Record<string, string>): AlarmRecord | undefined {
  if (!h.state || !h.version || !h.context) return undefined;
  return {
    id: h.id ?? '',
    state: h.state as AlarmState,
    version: Number(h.version),
    severity: h.severity as Severity,
    context: JSON.parse(h.context) as AlarmContext,
    definition: h.definition ?? '',
    since: Number(h.since),
    updatedAt: Number(h.updatedAt),
    who: h.who ?? '',
    why: h.why ?? '',
    value: h.value ? Number(h.value) : null,
    group: h.group ?? '',
    chattering: h.chattering === '1',
  };
}

function eventOf(entryId: string, flat: readonly string[]): AlarmEventEntry {
  const f = fieldsOf(flat);
  return {
    entryId,
    id: f.id ?? '',
    event: f.event ?? '',
    from: f.from ?? '',
    to: f.to ?? '',
    severity: f.severity ?? '',
    who: f.who ?? '',
    why: f.why ?? '',
    value: f.value ?? '',
    time: Number(f.time),
    version: Number(f.version),
    group: f.group ?? '',
  };
}

export class AlarmsRedis {
  private readonly outboxMaxBytes: number;
  /** The connection the alarm actors commit on (commitEvaluated), made at their first commit. */
  private ownCore: RedisCore | undefined;

  constructor(
    private readonly core: RedisCore,
    limits: OutboxLimits,
  ) {
    this.outboxMaxBytes = Math.round(limits.outboxMaxMB * 2 ** 20);
  }

  /** Creates the alarm in the machine's initial state, or returns what is stored (a restart resumes from it). */
  async init(a: AlarmInitArgs): Promise<StoredAlarm> {
    const r = await this.core.fcall('alarm_init', a);
    return { created: r[0] === 1, state: r[1] as AlarmState, version: Number(r[2]), context: JSON.parse(r[3]) as AlarmContext };
  }

  /** Commits one transition; resolves to the new version, rejects with AlarmRefusedError when refused. */
  async commit(a: AlarmCommitArgs): Promise<number> {
    return this.commitOn(this.core, a);
  }

  /**
   * The same, for the alarm actors' own transitions, on a connection of their own:
   * on the shared one a commit queues behind the channels' c2m calls (each some ms of
   * Redis's time at 1,000 points, a backlog of them when Redis falls behind), because
   * Redis runs what one connection sent before it turns to the next. Made at the
   * first such commit, waiting for its connection like the runtime's writers do;
   * operators' actions (the gateway, which fails fast) stay on the shared one.
   */
  async commitEvaluated(a: AlarmCommitArgs): Promise<number> {
    if (!this.ownCore) {
      const client = this.core.client.duplicate({ connectionName: 'voltage:alarms', enableOfflineQueue: true });
      // Its failures reach the callers; the shared connection logs an outage.
      client.on('error', () => undefined);
      this.ownCore = new RedisCore(client);
    }
    return this.commitOn(this.ownCore, a);
  }

  /** Closes the actors' commit connection, if one was made. */
  async close(): Promise<void> {
    const own = this.ownCore;
    this.ownCore = undefined;
    if (own) await closeRedis(own.client);
  }

  private async commitOn(core: RedisCore, a: AlarmCommitArgs): Promise<number> {
    try {
      return await core.fcall('alarm_commit', { ...a, group: a.group ?? '', chattering: a.chattering ?? false, outboxMaxBytes: this.outboxMaxBytes });
    } catch (e) {
      const refusal = e instanceof RedisFunctionError ? parseAlarmRefusal(e.message, e) : undefined;
      throw refusal ?? e;
    }
  }

  /**
   * An operator's action: the machine stepped from the stored state, committed with
   * compare-and-set. Rejects with AlarmRefusedError: NO_ALARM, NOT_ALLOWED (the
   * state does not take it, named), VERSION_CONFLICT (someone else committed first).
   */
  async act(id: string, event: AlarmEvent, who: string, why: string): Promise<AlarmRecord> {
    const stored = await this.get(id);
    if (!stored) throw new AlarmRefusedError('NO_ALARM', `no alarm '${id}'`, 'none', 0);
    const from = { state: stored.state, context: stored.context };
    const next = stepAlarm(from, event);
    if (!next) throw new AlarmRefusedError('NOT_ALLOWED', `alarm ${id} in state ${stored.state} does not take ${event.type}`, stored.state, stored.version);
    await this.commit({
      id,
      expectedVersion: stored.version,
      event: event.type,
      to: next.state,
      severity: next.context.severity,
      context: next.context,
      who,
      why: why || stepReason(from, next, event),
      value: stored.value,
      ts: event.now,
      group: stored.group,
      chattering: stored.chattering,
    });
    return (await this.get(id))!;
  }

  /** What `alarm:{id}` holds now, or undefined when there is no such alarm. */
  async get(id: string): Promise<AlarmRecord | undefined> {
    return recordOf(await redisCall('HGETALL', () => this.core.client.hgetall(KEYS.alarm(id))));
  }

  /** Every alarm ever initialised, sorted by id. */
  async list(): Promise<AlarmRecord[]> {
    const ids = (await redisCall('SMEMBERS', () => this.core.client.smembers(KEYS.alarmIndex))).sort();
    return this.records(ids);
  }

  async records(ids: readonly string[]): Promise<AlarmRecord[]> {
    if (ids.length === 0) return [];
    const pipe = this.core.client.pipeline();
    for (const id of ids) pipe.hgetall(KEYS.alarm(id));
    const res = (await redisCall('HGETALL', () => pipe.exec())) ?? [];
    return res.flatMap(([, h]) => {
      const r = recordOf(h as Record<string, string>);
      return r ? [r] : [];
    });
  }

  /** The active alarms (alarm:active), oldest first, each with the ms it became active. */
  async active(): Promise<Array<{ readonly id: string; readonly since: number }>> {
    const flat = await redisCall('ZRANGE', () => this.core.client.zrange(KEYS.alarmActive, '0', '-1', 'WITHSCORES'));
    const out: Array<{ id: string; since: number }> = [];
    for (let i = 0; i + 1 < flat.length; i += 2) out.push({ id: flat[i]!, since: Number(flat[i + 1]) });
    return out;
  }

  /** A page of alarm:events, newest first, before the entry `before` (exclusive; none: from the newest). */
  async events(count: number, before?: string, id?: string): Promise<AlarmEventEntry[]> {
    const out: AlarmEventEntry[] = [];
    let end = before ? `(${before}` : '+';
    // Filtering by alarm scans a bounded number of pages.
    for (let pages = 0; pages < (id ? 50 : 1) && out.length < count; pages++) {
      const rows = await redisCall('XREVRANGE', () => this.core.client.xrevrange(KEYS.alarmEvents, end, '-', 'COUNT', String(id ? 500 : count)));
      for (const [entryId, flat] of rows) {
        const e = eventOf(entryId, flat);
        if (!id || e.id === id) out.push(e);
        if (out.length >= count) break;
      }
      if (rows.length === 0) break;
      end = `(${rows[rows.length - 1]![0]}`;
    }
    return out;
  }

  /** Events since an entry id (exclusive), oldest first: what the KPIs count over a window. */
  async eventsSince(startMs: number): Promise<AlarmEventEntry[]> {
    const rows = await redisCall('XRANGE', () => this.core.client.xrange(KEYS.alarmEvents, String(startMs), '+', 'COUNT', '100000'));
    return rows.map(([entryId, flat]) => eventOf(entryId, flat));
  }

  /** The delay filters of these alarms (JSON each), or undefined where none is stored. */
  async filters(ids: readonly string[]): Promise<Array<string | undefined>> {
    if (ids.length === 0) return [];
    const res = await redisCall('HMGET', () => this.core.client.hmget(KEYS.alarmFilters, ...ids));
    return res.map((v) => v ?? undefined);
  }

  async saveFilters(entries: ReadonlyMap<string, string>): Promise<void> {
    if (entries.size === 0) return;
    await redisCall('HSET', () => this.core.client.hset(KEYS.alarmFilters, Object.fromEntries(entries)));
  }

  /** Site-wide indicators (flood, its start, time in flood). */
  async stats(): Promise<Record<string, string>> {
    return redisCall('HGETALL', () => this.core.client.hgetall(KEYS.alarmStats));
  }

  async setStats(fields: Readonly<Record<string, string>>): Promise<void> {
    await redisCall('HSET', () => this.core.client.hset(KEYS.alarmStats, fields));
  }
}
