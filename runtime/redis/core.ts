/**
 * The shared core under every domain module of runtime/redis/: the ONLY place
 * that knows the Lua argument order of each Function (FUNCTIONS below: named
 * inputs → KEYS and ARGV as lua/*.lua reads them), and the ONLY place that maps
 * what Redis answers into a typed RedisError (toRedisError): a missing
 * Function, BUSYGROUP, NOGROUP, a timeout — each matched once, here.
 *
 * When Redis answers that a Function is missing (it restarted without
 * persistence, or someone ran FUNCTION FLUSH), the library is loaded again,
 * the restorers that domains registered run (the site's mapping), and the
 * call is retried once.
 */
import type { Redis } from 'ioredis';
import { REDIS_ERROR_CODES, RedisError, RedisFunctionError, errorMessage, isRedisError, type RedisErrorCode } from '../errors.js';
import type { AlarmContext, AlarmEventType, AlarmState, Severity } from '../../machines/alarmMachine.js';
import type { ActorFields, TransitionEntry } from '../domain/actors.js';
import type { CommandOutcome } from '../domain/commands.js';
import { formatValue, type ModelValue } from '../domain/telemetry.js';
import { formatOptional } from './encoding.js';
import { KEYS, POINT_TYPES } from './keys.js';
import { LIBRARY_SOURCE } from './library.js';
import { TRACE_KINDS, trace, traceName, traceNow, tracing } from '../trace.js';

export type FcallArg = string | number | Buffer;

/** One actor's report: fields merged into `actor:{id}`, with an entry of its transitions journal when given. */
export interface ActorReport {
  readonly id: string;
  readonly fields: ActorFields;
  /** The entry of the actor's transitions journal written with the report (its state value changed), and the journal's bound. */
  readonly transition?: { readonly entry: TransitionEntry; readonly maxLen: number };
}

/** What each Function takes, by name; FUNCTIONS turns it into KEYS and ARGV. */
export interface FunctionInputs {
  c2m: { readonly channel: string; readonly ts: number; readonly outboxMaxBytes: number; readonly points: Buffer };
  c2m_group: { readonly outboxMaxBytes: number; readonly batches: readonly { readonly channel: string; readonly ts: number; readonly points: Buffer }[] };
  model_set: { readonly model: string; readonly ts: number; readonly outboxMaxBytes: number; readonly values: readonly ModelValue[] };
  actor_report: ActorReport;
  site_stage: { readonly kind: 'c2m' | 'm2c'; readonly pairs: readonly string[] };
  site_load: { readonly json: string; readonly mappingCount: number; readonly controlCount: number; readonly models: readonly string[] };
  m2c: { readonly model: string; readonly name: string; readonly value: number; readonly source: string; readonly ts: number; readonly timeoutMs: number };
  cmd_result: {
    readonly channel: string;
    readonly id: string;
    readonly status: CommandOutcome;
    readonly message: string;
    readonly ts: number;
    readonly group: string;
    readonly entryId: string;
    readonly readback: number | null;
    readonly outboxMaxBytes: number;
  };
  alarm_init: { readonly id: string; readonly ts: number; readonly severity: Severity; readonly context: AlarmContext; readonly definition: string };
  alarm_commit: {
    readonly id: string;
    /** The version the transition was computed from (compare-and-set). */
    readonly expectedVersion: number;
    readonly event: AlarmEventType;
    readonly to: AlarmState;
    readonly severity: Severity;
    readonly context: AlarmContext;
    /** The operator's name, or `alarm/{id}` for the alarm's own actor. */
    readonly who: string;
    /** An operator's comment, or what made the actor move (stepReason). */
    readonly why: string;
    readonly value: number | null;
    readonly ts: number;
    readonly group: string;
    readonly chattering: boolean;
    readonly outboxMaxBytes: number;
  };
  rule_init: { readonly id: string; readonly ts: number; readonly state: string; readonly context: string; readonly definition: string };
  rule_commit: {
    readonly id: string;
    readonly expectedVersion: number;
    readonly state: string;
    readonly context: string;
    readonly ts: number;
    readonly who: string;
    readonly execution: string;
    readonly counter: string;
    /** A sequence rule's progress (JSON; '' removes it); undefined leaves it as stored. */
    readonly sequence?: string;
    /** Control commands sent by m2c in the same call, once the step is written (source `rule:{id}`). */
    readonly commands: readonly { readonly model: string; readonly name: string; readonly value: number }[];
    readonly source: string;
    readonly timeoutMs: number;
    /** The rule actor's report of the step, written by the same call (as actor_report writes it). */
    readonly report?: ActorReport;
  };
  /** Several executions' results (of any rules), one entry each. */
  rule_record: {
    readonly records: readonly {
      readonly id: string;
      readonly ts: number;
      readonly of: string;
      readonly results: string;
      readonly counters: Readonly<Record<string, number>>;
    }[];
  };
  rule_notify: { readonly id: string; readonly ts: number; readonly event: string; readonly outboxMaxBytes: number };
  cloud_resend_step: {
    readonly link: string;
    readonly request: string;
    /** Where the request's cursor must be for the step to be written. */
    readonly expectedCursor: string;
    readonly cursor: string;
    /** The parked ids the cloud took (deleted). */
    readonly taken: readonly string[];
    readonly refusedAgain: number;
    /** '' when none. */
    readonly lastRefusal: string;
  };
}

/** What each Function returns (see its comment in lua/). */
export interface FunctionOutputs {
  c2m: [points: number, models: number, outboxDropped: number, siteMissing: 0 | 1];
  /** siteMissing, then per batch: points, models, outboxDropped, error ('' when written). */
  c2m_group: (number | string)[];
  model_set: [values: number, outboxDropped: number];
  actor_report: number;
  site_stage: number;
  site_load: number;
  m2c: string;
  cmd_result: 0 | 1;
  alarm_init: [created: 0 | 1, state: string, version: number, context: string];
  alarm_commit: number;
  rule_init: [created: 0 | 1, state: string, version: number, context: string, sequence: string];
  /** Then per command: its id and '', or '' and m2c's refusal. */
  rule_commit: [version: number, entryId: string, ...commands: string[]];
  /** The entries' ids, in the records' order. */
  rule_record: string[];
  rule_notify: string;
  /** Written (1) with the new cursor and how many parked messages XDEL removed, or not (0) with the stored cursor. */
  cloud_resend_step: [written: 0 | 1, cursor: string, unparked: number];
}

export type FunctionName = keyof FunctionInputs;

interface Wire {
  readonly keys: readonly string[];
  readonly args: readonly FcallArg[];
}

/** The keys every c2m call holds before the channel's own. */
const C2M_SHARED_KEYS = [KEYS.mappingC2m, KEYS.mappingC2mChannels, KEYS.outbox, KEYS.outboxStats, KEYS.siteConfig] as const;
/** A channel's 12 value hashes (value, timestamp, quality per point type) and c2m's 18 keys (the mapping's generation last), made once per channel (the hot path). */
const c2mKeys = new Map<string, { readonly hashes: readonly string[]; readonly all: readonly string[] }>();
function channelKeys(channel: string): { readonly hashes: readonly string[]; readonly all: readonly string[] } {
  let keys = c2mKeys.get(channel);
  if (!keys) {
    const hashes: string[] = [];
    for (const t of POINT_TYPES) {
      const base = KEYS.channel(channel, t);
      hashes.push(base, KEYS.timestamps(base), KEYS.qualities(base));
    }
    keys = { hashes, all: [...C2M_SHARED_KEYS, ...hashes, KEYS.mappingC2mGeneration] };
    c2mKeys.set(channel, keys);
  }
  return keys;
}

const actorReportKeys = (id: string): string[] => [KEYS.actor(id), KEYS.actors, KEYS.actorTransitions(id)];

/** An actor report's ARGV (actor_report's, and rule_commit's tail), appended to `args`. */
function actorReportArgs(r: ActorReport, args: FcallArg[]): FcallArg[] {
  const t = r.transition?.entry;
  const journal: FcallArg[] = t ? ['ts', t.ts, 'event', t.event, 'from', t.from, 'to', t.to] : [];
  if (t?.error) journal.push('error', t.error);
  args.push(r.id, r.transition?.maxLen ?? 0, journal.length, ...journal);
  for (const [k, v] of Object.entries(r.fields)) args.push(k, v);
  return args;
}

/** The Lua argument order of every Function: change it together with lua/. */
const FUNCTIONS: { readonly [F in FunctionName]: (i: FunctionInputs[F]) => Wire } = {
  c2m: (i) => ({ keys: channelKeys(i.channel).all, args: [i.channel, i.ts, i.outboxMaxBytes, i.points] }),
  c2m_group: (i) => {
    const keys: string[] = [...C2M_SHARED_KEYS];
    const args: FcallArg[] = [i.outboxMaxBytes];
    for (const b of i.batches) {
      keys.push(...channelKeys(b.channel).hashes);
      args.push(b.channel, b.ts, b.points);
    }
    keys.push(KEYS.mappingC2mGeneration);
    return { keys, args };
  },
  model_set: (i) => {
    const base = KEYS.model(i.model);
    const args: FcallArg[] = [i.model, i.ts, i.outboxMaxBytes];
    for (const v of i.values) args.push(v.name, formatOptional(v.value), v.quality);
    return { keys: [base, KEYS.timestamps(base), KEYS.qualities(base), KEYS.outbox, KEYS.outboxStats], args };
  },
  actor_report: (i) => ({ keys: actorReportKeys(i.id), args: actorReportArgs(i, []) }),
  site_stage: (i) => ({ keys: [KEYS.mappingC2mNext, KEYS.mappingM2cNext], args: [i.kind, ...i.pairs] }),
  site_load: (i) => ({
    keys: [
      KEYS.mappingC2m,
      KEYS.mappingM2c,
      KEYS.siteConfig,
      KEYS.actors,
      KEYS.mappingC2mNext,
      KEYS.mappingM2cNext,
      KEYS.mappingC2mChannels,
      KEYS.mappingC2mGeneration,
      KEYS.siteModels,
    ],
    args: [i.json, i.mappingCount, i.controlCount, ...i.models],
  }),
  m2c: (i) => ({ keys: [KEYS.mappingM2c, KEYS.commandSeq, KEYS.siteModels], args: [i.model, i.name, formatValue(i.value), i.source, i.ts, i.timeoutMs] }),
  cmd_result: (i) => ({
    keys: [KEYS.command(i.id), KEYS.commandStream(i.channel), KEYS.outbox, KEYS.outboxStats],
    args: [i.id, i.status, i.message, i.ts, i.group, i.entryId, formatOptional(i.readback), i.outboxMaxBytes],
  }),
  alarm_init: (i) => ({ keys: [KEYS.alarm(i.id), KEYS.alarmIndex], args: [i.id, i.ts, i.severity, JSON.stringify(i.context), i.definition] }),
  alarm_commit: (i) => ({
    keys: [KEYS.alarm(i.id), KEYS.alarmActive, KEYS.alarmEvents, KEYS.outbox, KEYS.outboxStats],
    args: [
      i.id,
      i.expectedVersion,
      i.event,
      i.to,
      i.severity,
      JSON.stringify(i.context),
      i.who,
      i.why,
      formatOptional(i.value),
      i.ts,
      i.group,
      i.chattering ? '1' : '0',
      i.outboxMaxBytes,
    ],
  }),
  rule_init: (i) => ({ keys: [KEYS.rule(i.id), KEYS.rules], args: [i.id, i.ts, i.state, i.context, i.definition] }),
  rule_commit: (i) => {
    const args: FcallArg[] = [i.id, i.expectedVersion, i.state, i.context, i.ts, i.who, i.execution, i.counter, i.sequence ?? '-', i.source, i.timeoutMs];
    args.push(i.commands.length);
    for (const c of i.commands) args.push(c.model, c.name, formatValue(c.value));
    const keys = [KEYS.rule(i.id), KEYS.ruleExecutions, KEYS.ruleStats(i.id), KEYS.mappingM2c, KEYS.commandSeq, KEYS.siteModels];
    if (i.report) {
      keys.push(...actorReportKeys(i.report.id));
      actorReportArgs(i.report, args);
    }
    return { keys, args };
  },
  rule_record: (i) => {
    const keys: string[] = [KEYS.ruleExecutions];
    const args: FcallArg[] = [];
    for (const r of i.records) {
      keys.push(KEYS.ruleStats(r.id));
      const counters = Object.entries(r.counters);
      args.push(r.id, r.ts, r.of, r.results, counters.length, ...counters.flat());
    }
    return { keys, args };
  },
  rule_notify: (i) => ({ keys: [KEYS.ruleEvents, KEYS.outbox, KEYS.outboxStats], args: [i.id, i.ts, i.event, i.outboxMaxBytes] }),
  cloud_resend_step: (i) => ({
    keys: [KEYS.cloudRefused(i.link), KEYS.cloudStats(i.link), KEYS.cloudResend(i.link, i.request)],
    args: [i.expectedCursor, i.cursor, i.refusedAgain, i.lastRefusal, ...i.taken],
  }),
};

/** What Redis or ioredis said, as a code: each kind of answer is recognised here and nowhere else. */
function classify(message: string): RedisErrorCode | undefined {
  if (/^(ERR )?Function not found|No such library/i.test(message)) return REDIS_ERROR_CODES.functionMissing;
  if (message.startsWith('BUSYGROUP')) return REDIS_ERROR_CODES.busyGroup;
  if (message.startsWith('NOGROUP')) return REDIS_ERROR_CODES.noGroup;
  if (message === 'Command timed out') return REDIS_ERROR_CODES.timeout;
  if (message.includes('enableOfflineQueue options is false') || message === 'Connection is closed.') return REDIS_ERROR_CODES.unavailable;
  return undefined;
}

/**
 * Any failure of a Redis call as a RedisError. `what` names the call (a Function
 * or a command) and prefixes the message; a Function's own refusal is a
 * RedisFunctionError.
 */
export function toRedisError(e: unknown, what: string, isFunction = false): RedisError {
  if (e instanceof RedisError) return e;
  const message = errorMessage(e);
  const code = classify(message);
  if (code === undefined && isFunction) return new RedisFunctionError(what, message, { cause: e });
  return new RedisError(code ?? REDIS_ERROR_CODES.command, `${what}: ${message}`, { [isFunction ? 'function' : 'command']: what }, { cause: e });
}

/** Runs one Redis command, its failure as a RedisError. */
export async function redisCall<T>(what: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (e) {
    throw toRedisError(e, what);
  }
}

/** What RedisCore.orUnreachable gives when the connection was lost first. */
export const UNREACHABLE: unique symbol = Symbol('redis unreachable');

export class RedisCore {
  readonly client: Redis;
  private readonly restorers: Array<() => Promise<void>> = [];
  private reloading: Promise<void> | undefined;

  /** When the connection was lost (performance.now() ms), or undefined while it is up. */
  private lostAt: number | undefined;

  /** Called when the connection is lost (see orUnreachable). */
  private readonly lostListeners = new Set<() => void>();

  private static readonly byClient = new WeakMap<Redis, RedisCore>();

  /** The one RedisCore of a connection: each one listens to its client, so a core per call would pile listeners up. */
  static of(client: Redis): RedisCore {
    let core = RedisCore.byClient.get(client);
    if (!core) {
      core = new RedisCore(client);
      RedisCore.byClient.set(client, core);
    }
    return core;
  }

  private constructor(client: Redis) {
    this.client = client;
    const lost = () => {
      this.lostAt ??= performance.now();
      for (const l of this.lostListeners) l();
    };
    client.on('close', lost);
    client.on('end', lost);
    client.on('ready', () => {
      this.lostAt = undefined;
    });
    if (client.status !== 'ready') lost();
  }

  /**
   * The call's result, or UNREACHABLE as soon as the connection is lost under it
   * (the call stays queued in ioredis): for a writer that goes on without Redis.
   * A listener per call, removed when it settles: nothing piles up while Redis is up.
   */
  async orUnreachable<T>(call: Promise<T>): Promise<T | typeof UNREACHABLE> {
    let listener: () => void = () => undefined;
    const lost = new Promise<typeof UNREACHABLE>((resolve) => {
      listener = () => resolve(UNREACHABLE);
      this.lostListeners.add(listener);
    });
    try {
      return await Promise.race([call, lost]);
    } finally {
      this.lostListeners.delete(listener);
    }
  }

  /** How long the connection has been down, in ms; undefined while it is up. */
  unreachableForMs(): number | undefined {
    return this.lostAt === undefined ? undefined : Math.round(performance.now() - this.lostAt);
  }

  /** FUNCTION LOAD REPLACE of the whole library (lua/, see library.ts). */
  async loadLibrary(): Promise<void> {
    await redisCall('FUNCTION LOAD', () => this.client.call('FUNCTION', 'LOAD', 'REPLACE', LIBRARY_SOURCE));
  }

  /** Runs after each reload of the library, in the order registered (a domain restores what Redis lost). */
  onReload(restore: () => Promise<void>): void {
    this.restorers.push(restore);
  }

  /** Loads the library again and runs the restorers (at most one reload at a time). */
  reload(): Promise<void> {
    this.reloading ??= (async () => {
      try {
        await this.loadLibrary();
        for (const restore of this.restorers) await restore();
      } finally {
        this.reloading = undefined;
      }
    })();
    return this.reloading;
  }

  private async send(fn: FunctionName, wire: Wire): Promise<unknown> {
    try {
      if (tracing) return await tracedSend(this.client, fn, wire);
      return await this.client.fcall(fn, wire.keys.length, ...wire.keys, ...wire.args);
    } catch (e) {
      throw toRedisError(e, fn, true);
    }
  }

  /** One Function call; when the library is missing, it is loaded again and the call retried once. */
  async fcall<F extends FunctionName>(fn: F, input: FunctionInputs[F]): Promise<FunctionOutputs[F]> {
    const wire = FUNCTIONS[fn](input);
    try {
      return (await this.send(fn, wire)) as FunctionOutputs[F];
    } catch (e) {
      if (!isRedisError(e, REDIS_ERROR_CODES.functionMissing)) throw e;
    }
    await this.reload();
    return (await this.send(fn, wire)) as FunctionOutputs[F];
  }

  /** The version of the library Redis has loaded (LIBRARY_VERSION when it is current). */
  async libraryVersion(): Promise<string> {
    try {
      return (await this.client.fcall_ro('voltage_version', 0)) as string;
    } catch (e) {
      throw toRedisError(e, 'voltage_version', true);
    }
  }

  /** XGROUP CREATE … MKSTREAM; a group that exists already is fine (BUSYGROUP). Returns whether it was made. */
  async ensureGroup(stream: string, group: string): Promise<boolean> {
    try {
      await redisCall('XGROUP CREATE', () => this.client.xgroup('CREATE', stream, group, '0', 'MKSTREAM'));
      return true;
    } catch (e) {
      if (isRedisError(e, REDIS_ERROR_CODES.busyGroup)) return false;
      throw e;
    }
  }
}

/** send() under VOLTAGE_TRACE: the call's send and answer times, and for c2m each batch's channel and poll ts. */
async function tracedSend(client: Redis, fn: FunctionName, wire: Wire): Promise<unknown> {
  const sent = traceNow();
  const r = await client.fcall(fn, wire.keys.length, ...wire.keys, ...wire.args);
  const at = traceNow();
  trace(TRACE_KINDS.fcall, at, sent, traceName(fn));
  // ARGV: c2m's channel, ts, …; c2m_group's outbox bound, then channel, ts, points per batch; rule_commit's id first.
  if (fn === 'c2m' || fn === 'c2m_group') {
    for (let i = fn === 'c2m' ? 0 : 1; i + 1 < wire.args.length; i += fn === 'c2m' ? wire.args.length : 3) {
      const channel = traceName(String(wire.args[i]));
      trace(TRACE_KINDS.c2m, at, sent, channel);
      trace(TRACE_KINDS.c2mTs, at, Number(wire.args[i + 1]), channel);
    }
  } else if (fn === 'rule_commit') trace(TRACE_KINDS.ruleCommit, at, sent, traceName(String(wire.args[0])));
  return r;
}
