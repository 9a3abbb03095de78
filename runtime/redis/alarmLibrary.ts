/**
 * The typed side of lua/alarms.lua: its text with the tables generated from
 * machines/alarmMachine.ts filled in, and the two calls with their argument
 * order. The only place that knows that order; change both together.
 *
 * A refusal comes back as an AlarmRefusedError with a stable code and the
 * stored state and version, so that an API can answer 409 naming the state.
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Redis } from 'ioredis';
import { VoltageError } from '../errors.js';
import {
  activeAlarmStates, ALARM_INITIAL_STATE, ALARM_STATES, alarmTransitions,
  type AlarmContext, type AlarmEventType, type AlarmState, type Severity,
} from '../../machines/alarmMachine.js';

export const ALARM_KEYS = {
  alarm: (id: string) => `alarm:${id}`,
  active: 'alarm:active',
  events: 'alarm:events',
  /** pub/sub: one JSON message per committed transition. */
  update: 'alarm:update',
} as const;

/** lua/alarms.lua, found from the sources (runtime/redis/) and from the bundle (dist/) alike. */
function moduleText(): string {
  const candidates = [new URL('../../lua/alarms.lua', import.meta.url), new URL('../lua/alarms.lua', import.meta.url)].map((u) => fileURLToPath(u));
  return readFileSync(candidates.find((p) => existsSync(p)) ?? candidates[0]!, 'utf8');
}

/** state → event → set of targets, as a Lua table literal. */
export function luaAlarmTransitions(): string {
  const states = Object.entries(alarmTransitions()).map(([from, byEvent]) => {
    const events = Object.entries(byEvent).map(([ev, tos]) => `${ev} = { ${tos.map((t) => `${t} = true`).join(', ')} }`);
    return `${from} = { ${events.join(', ')} }`;
  });
  return `{ ${states.join(', ')} }`;
}

/** The module body with its generated parts filled in; the library it joins must define `fail` and `positive_int`. */
export function alarmLuaModule(): string {
  const active = activeAlarmStates().map((s) => `${s} = true`).join(', ');
  const text = moduleText();
  const out = text
    .replace('local ALARM_TRANSITIONS = {} --@@ALARM_TRANSITIONS@@', `local ALARM_TRANSITIONS = ${luaAlarmTransitions()}`)
    .replace('local ALARM_ACTIVE = {} --@@ALARM_ACTIVE@@', `local ALARM_ACTIVE = { ${active} }`)
    .replace("local ALARM_INITIAL = 'normal' --@@ALARM_INITIAL@@", `local ALARM_INITIAL = '${ALARM_INITIAL_STATE}'`);
  if (out.includes('--@@')) throw new VoltageError('runtime', 'ALARM_LUA_PLACEHOLDER', 'lua/alarms.lua: a generated table was not filled in (placeholder line changed?)');
  return out;
}

export type AlarmRefusal = 'NO_ALARM' | 'VERSION_CONFLICT' | 'NOT_ALLOWED' | 'BAD_ARGUMENT';
const REFUSALS: readonly AlarmRefusal[] = ['NO_ALARM', 'VERSION_CONFLICT', 'NOT_ALLOWED', 'BAD_ARGUMENT'];

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

/** Reads a refusal out of a Redis error message; undefined when it is some other error. */
export function parseAlarmRefusal(message: string): AlarmRefusedError | undefined {
  const m = /alarm_commit: (\w+) (.*) \[state=([\w-]+) version=(\d+)\]/.exec(message);
  if (!m || !REFUSALS.includes(m[1] as AlarmRefusal)) return undefined;
  const state = m[3] === 'none' || ALARM_STATES.includes(m[3] as AlarmState) ? (m[3] as AlarmState | 'none') : 'none';
  return new AlarmRefusedError(m[1] as AlarmRefusal, m[2]!, state, Number(m[4]));
}

export type FcallClient = Pick<Redis, 'fcall'>;

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

/** Creates the alarm in the machine's initial state, or returns what is stored (a restart resumes from it). */
export async function alarmInitCall(client: FcallClient, a: AlarmInitArgs): Promise<StoredAlarm> {
  const r = (await client.fcall('alarm_init', 1, ALARM_KEYS.alarm(a.id), a.id, a.ts, a.severity, JSON.stringify(a.context), a.definition)) as [number, string, number, string];
  return { created: r[0] === 1, state: r[1] as AlarmState, version: Number(r[2]), context: JSON.parse(r[3]) as AlarmContext };
}

export interface AlarmCommitArgs {
  readonly id: string;
  /** The version the transition was computed from (compare-and-set). */
  readonly expectedVersion: number;
  readonly event: AlarmEventType;
  readonly to: AlarmState;
  readonly severity: Severity;
  readonly context: AlarmContext;
  /** The operator's name, or `alarm/{id}` for the alarm's own actor. */
  readonly who: string;
  /** An operator's comment, or what made the actor move (`condition`, `shelve expired`, `escalation`). */
  readonly why: string;
  readonly value: number | null;
  readonly ts: number;
}

/** Commits one transition; resolves to the new version, rejects with AlarmRefusedError when refused. */
export async function alarmCommitCall(client: FcallClient, a: AlarmCommitArgs): Promise<number> {
  try {
    return (await client.fcall('alarm_commit', 3, ALARM_KEYS.alarm(a.id), ALARM_KEYS.active, ALARM_KEYS.events,
      a.id, a.expectedVersion, a.event, a.to, a.severity, JSON.stringify(a.context), a.who, a.why,
      a.value === null ? '' : a.value.toFixed(6), a.ts)) as number;
  } catch (e) {
    const refusal = parseAlarmRefusal((e as Error).message ?? '');
    if (refusal) throw new AlarmRefusedError(refusal.refusal, refusal.message, refusal.state, refusal.version, { cause: e });
    throw e;
  }
}

export interface AlarmRecord {
  readonly state: AlarmState;
  readonly version: number;
  readonly severity: Severity;
  readonly context: AlarmContext;
}

/** What `alarm:{id}` holds now, or undefined when there is no such alarm. */
export async function readAlarm(client: Pick<Redis, 'hmget'>, id: string): Promise<AlarmRecord | undefined> {
  const [state, version, severity, context] = await client.hmget(ALARM_KEYS.alarm(id), 'state', 'version', 'severity', 'context');
  if (!state || !version || !severity || !context) return undefined;
  return { state: state as AlarmState, version: Number(version), severity: severity as Severity, context: JSON.parse(context) as AlarmContext };
}
