/**
 * Every Redis key and pub/sub channel name the runtime uses, in one table
 * (DESIGN.md §4). Nothing outside this file spells a key; the Lua modules in
 * lua/ get theirs in KEYS where the names are known in advance and spell the
 * few they derive (model hashes from the mapping, a command's stream) the same way.
 */
import type { PointType } from '../config/site.js';

export const POINT_TYPES: readonly PointType[] = ['m', 's', 'c', 'a'];

const MODEL_UPDATE_PREFIX = 'modsrv:';
const CHANNEL_UPDATE_PREFIX = 'comsrv:';
const UPDATE_SUFFIX = ':update';

export const KEYS = {
  // site
  mappingC2m: 'mapping:c2m',
  /** The channels that feed some model (c2m skips the mapping lookup for the others). */
  mappingC2mChannels: 'mapping:c2m:channels',
  /** The mapping's generation: site_load moves it on, c2m drops the targets it cached from an older one. */
  mappingC2mGeneration: 'mapping:c2m:gen',
  mappingM2c: 'mapping:m2c',
  mappingC2mNext: 'mapping:c2m:next',
  mappingM2cNext: 'mapping:m2c:next',
  siteConfig: 'site:config',
  /** The loaded site's model ids (site_load), so that m2c tells an unknown model from a missing control. */
  siteModels: 'site:models',
  // telemetry
  /** The one outbox stream (history, cloud links: a consumer group each) and its size and drop counts. */
  outbox: 'outbox',
  outboxStats: 'stats:outbox',
  channel: (ch: string, t: PointType) => `comsrv:${ch}:${t}`,
  model: (m: string) => `modsrv:${m}:measurement`,
  /** The timestamps and the qualities beside a value hash (channel or model). */
  timestamps: (valueHash: string) => `${valueHash}:ts`,
  qualities: (valueHash: string) => `${valueHash}:q`,
  modelUpdate: (m: string) => `${MODEL_UPDATE_PREFIX}${m}${UPDATE_SUFFIX}`,
  channelUpdate: (ch: string) => `${CHANNEL_UPDATE_PREFIX}${ch}${UPDATE_SUFFIX}`,
  /** PSUBSCRIBE patterns for every model's and every channel's updates. */
  modelUpdates: `${MODEL_UPDATE_PREFIX}*${UPDATE_SUFFIX}`,
  channelUpdates: `${CHANNEL_UPDATE_PREFIX}*${UPDATE_SUFFIX}`,
  // actors
  actors: 'actors',
  actor: (id: string) => `actor:${id}`,
  actorUpdate: 'actor:update',
  actorTransitions: (id: string) => `actor:${id}:transitions`,
  // commands
  commandSeq: 'cmd:seq',
  command: (id: string) => `command:${id}`,
  commandStream: (ch: string) => `cmd:${ch}`,
  commandHint: (ch: string) => `cmd:${ch}:hint`,
  commandResult: 'cmd:result',
  audit: 'audit:commands',
  // alarms
  alarm: (id: string) => `alarm:${id}`,
  /** set: every alarm id ever initialised. */
  alarmIndex: 'alarm:index',
  /** zset: id → ms the alarm became active. */
  alarmActive: 'alarm:active',
  /** stream: every committed transition, with who, why, value and time. */
  alarmEvents: 'alarm:events',
  /** pub/sub: one JSON message per committed transition (lua/alarms.lua spells it too). */
  alarmUpdate: 'alarm:update',
  /** hash: id → the on/off-delay filter state (JSON, absolute deadlines) of each alarm. */
  alarmFilters: 'alarm:filters',
  /** hash: site-wide alarm indicators and counters (flood, chattering, first-out groups). */
  alarmStats: 'alarm:stats',
  // history
  /** The consumer group of a history backend on the outbox. */
  historyGroup: (backend: string) => `history:${backend}`,
  /** The KeepFilter's state of a backend (open intervals, last written values for heartbeats): series id → JSON. */
  historyKeep: (backend: string) => `history:${backend}:keep`,
  /** Where each tier of a backend stands (actors/history/tiers.ts): tier name → the end of its last bucket written (epoch ms). */
  historyTiers: (backend: string) => `history:${backend}:tiers`,
  // cloud links
  /** The consumer group of a cloud link on the outbox. */
  cloudGroup: (link: string) => `cloud:${link}`,
  /** The last seq a cloud link gave a message (INCRBY): it survives restarts. */
  cloudSeq: (link: string) => `cloud:${link}:seq`,
  /** Outbox entry id → "firstSeq count" of the messages built from it, until they are PUBACKed (a resend keeps its seqs). */
  cloudInflight: (link: string) => `cloud:${link}:inflight`,
  /** A cloud link's counters: dropped (its backlog bound, drop-oldest), notTaken (refuse-new), refused (by the cloud), lastRefusal, unparked and refusedAgain (resends of parked messages). */
  cloudStats: (link: string) => `cloud:${link}:stats`,
  /** stream: the newest messages the broker refused one by one (seq, topic, reason, payload), parked (actors/cloud/refusals.ts). */
  cloudRefused: (link: string) => `cloud:${link}:refused`,
  /** A cloud link's per-point state (on-change: the last value published, the deadband's reference; interval: the latest values), written with the XACK of the entries it came from. */
  cloudLast: (link: string) => `cloud:${link}:last`,
  /** string, expiring: a command id a cloud link received ('' while it is handled, then its result's JSON), so that a redelivery runs nothing twice. */
  cloudCommandId: (link: string, id: string) => `cloud:${link}:cmd:${id}`,
  /** stream: requests to send the parked messages again (fromSeq, toSeq, who, at), handled by the link in order (actors/cloud/resend.ts). */
  cloudResends: (link: string) => `cloud:${link}:resends`,
  /** The id of the last resend request the link finished: it takes the ones after it. */
  cloudResendsDone: (link: string) => `cloud:${link}:resends:done`,
  /** hash, expiring once finished: one resend request's progress and outcome (state, resent, refused, cursor). */
  cloudResend: (link: string, request: string) => `cloud:${link}:resend:${request}`,
  /** The stream id ranges a refuse-new link refused (JSON, written by its monitor; see CloudLink). */
  cloudRefusing: (link: string) => `cloud:${link}:refusing`,
  // rules
  rule: (id: string) => `rule:${id}`,
  ruleStats: (id: string) => `rule:stats:${id}`,
  /** Every execution of every rule and what came of its actions (bounded). */
  ruleExecutions: 'rule:executions',
  /** pub/sub: one JSON message per committed step. */
  ruleUpdate: 'rule:update',
  /** The rules' `notify` events (bounded). */
  ruleEvents: 'rule:events',
  /** The rules of the loaded site. */
  rules: 'rules',
  /** Operator actions on rules (enable, disable), who and when. */
  ruleAudit: 'audit:rules',
} as const;

/** The model a `modsrv:{model}:update` message came from. */
export function modelOfUpdate(channel: string): string {
  return channel.slice(MODEL_UPDATE_PREFIX.length, -UPDATE_SUFFIX.length);
}

/** The channel a `comsrv:{channel}:update` message came from. */
export function channelOfUpdate(channel: string): string {
  return channel.slice(CHANNEL_UPDATE_PREFIX.length, -UPDATE_SUFFIX.length);
}
