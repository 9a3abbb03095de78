/**
 * The `cloud` section of a site config: the links that uplink the outbox to a
 * cloud, over MQTT (`type: mqtt`, the default) or as JSON batches over HTTP(S)
 * (`type: http`). A secret is never written in the YAML: the config names the
 * environment variable that holds it (`passwordEnv`, `headersEnv`), read when
 * the link connects.
 * Model names are checked against the site where it is resolved (load.ts).
 * It imports nothing from schema.ts, which imports it (a cycle would leave one
 * of the two undefined at load).
 */
import { z } from 'zod';

const WORD = /^[A-Za-z0-9_-]+$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const positiveMs = z.number().int().positive();

/** Placeholders a topic may hold; anything else in braces is a mistake. */
const TOPIC_PLACEHOLDERS = ['site', 'prefix', 'model', 'channel'] as const;

function topicTemplate(allowed: readonly string[]) {
  return z
    .string()
    .min(1)
    .superRefine((t, ctx) => {
      for (const m of t.matchAll(/\{([^}]*)\}/g)) {
        if (!allowed.includes(m[1]!))
          ctx.addIssue({ code: 'custom', message: `unknown placeholder {${m[1]}}: a topic may hold ${allowed.map((a) => `{${a}}`).join(', ')}` });
      }
      if (/[#+]/.test(t)) ctx.addIssue({ code: 'custom', message: 'a topic to publish to cannot hold the wildcards # or +' });
    });
}

const band = z.number().nonnegative().finite();

/**
 * Outbox entries read at once. MQTT: only the read's size (each message is its own PUBLISH), 1,000 by default:
 * with 200 the link spends more per message on Redis round trips and MULTIs (docs/benchmarks.md, round 14).
 * HTTP: one request body, 200 by default (a body of 1,000 hundred-point entries would exceed a common 1 MB limit).
 */
function batchEntries(dflt: number, what: string) {
  return z.number().int().min(1).max(10_000).default(dflt).describe(what);
}

/**
 * A link's deadband (publish: on-change): one number for every point, or per
 * point, `{default, models: {model: {name: n}}, channels: {channel: {"m:1": n}}}`.
 * A point with no band (none given for it and no default) is sent whenever the
 * outbox carries it (today's on-change). Kept in the object form.
 */
const deadbandSchema = z
  .union([
    band,
    z.strictObject({
      default: band.optional().describe('the band of every point not named below'),
      models: z.record(z.string(), z.record(z.string(), band)).default({}).describe('per model value: {model: {name: band}}'),
      channels: z.record(z.string(), z.record(z.string(), band)).default({}).describe('per raw channel point: {channel: {"m:1": band}}'),
    }),
  ])
  .transform((d) => (typeof d === 'number' ? { default: d, models: {}, channels: {} } : d))
  .describe('publish: on-change: a value within this distance of the last value this link published for the point is not sent (a change of quality always is)');

/** What every link type has: its cursor on the outbox, what it uplinks, its backlog bound and backoff. */
const commonLinkFields = {
  id: z.string().regex(WORD, 'must hold only letters, digits, _ and -').describe('names the link: its consumer group, actor and command source cloud:{id}'),
  models: z
    .array(z.union([z.string(), z.number().int().nonnegative()]).transform(String))
    .optional()
    .describe('the models to uplink (default: all; [] for none)'),
  channels: z
    .array(z.union([z.string(), z.number().int().nonnegative()]).transform(String))
    .optional()
    .describe('the channels whose raw points to uplink too (default: none)'),
  publish: z
    .enum(['on-change', 'interval'])
    .default('on-change')
    .describe('on-change: what the outbox carries, less what the deadband holds back; interval: a snapshot of each model and channel every intervalMs'),
  deadband: deadbandSchema.optional(),
  intervalMs: z.number().int().min(100).max(86_400_000).optional().describe('publish: interval: the snapshot period'),
  alarms: z.boolean().default(true).describe('uplink alarm transitions too (MQTT: on {prefix}/alarm), in the same order and seq'),
  include: z
    .strictObject({
      quality: z.boolean().default(true).describe('a quality map beside the values, for values that are not good'),
      timestamps: z.boolean().default(true).describe('the poll time of each message (ts)'),
    })
    .prefault({}),
  maxBacklogMB: z.number().positive().max(65_536).default(64).describe('what this link may leave unsent; past it, see overflow'),
  overflow: z
    .enum(['drop-oldest', 'refuse-new'])
    .default('drop-oldest')
    .describe('past maxBacklogMB: drop the oldest unsent entries, or keep them and refuse the new ones until the backlog is below the bound (both counted)'),
  drainRatePerS: z.number().int().positive().default(2_000).describe('outbox entries a second while draining a backlog'),
  batchEntries: batchEntries(200, 'outbox entries read at once: at most one request body'),
  reconnect: z
    .strictObject({
      minBackoffMs: positiveMs.default(500),
      maxBackoffMs: positiveMs.default(30_000),
    })
    .prefault({})
    .describe('backoff between connection attempts (doubling, 20 % jitter)'),
};

export const mqttLinkSchema = z.strictObject({
  ...commonLinkFields,
  type: z.literal('mqtt').default('mqtt'),
  batchEntries: batchEntries(1_000, 'outbox entries read at once (each message is still its own PUBLISH)'),
  url: z
    .string()
    .regex(/^(mqtts?|wss?):\/\/[^\s/]+/, 'must be an mqtt://, mqtts://, ws:// or wss:// URL, e.g. mqtt://broker.example.com:1883')
    .describe('the broker'),
  clientId: z.string().min(1).max(128).optional().describe('default: voltage-{site}-{id}'),
  username: z.string().optional(),
  passwordEnv: z
    .string()
    .regex(ENV_NAME, 'must be the NAME of an environment variable that holds the password (never the password)')
    .optional()
    .describe('the environment variable that holds the password'),
  tls: z
    .strictObject({
      ca: z.string().optional().describe('CA certificate file (PEM), relative to the config folder'),
      cert: z.string().optional().describe('client certificate file (PEM)'),
      key: z.string().optional().describe('client key file (PEM)'),
      rejectUnauthorized: z.boolean().default(true),
    })
    .optional(),
  protocolVersion: z
    .union([z.literal(4), z.literal(5)])
    .default(4)
    .describe('4 = MQTT 3.1.1, 5 = MQTT 5'),
  keepaliveS: z.number().int().min(0).max(65_535).default(30),
  prefix: topicTemplate(['site']).default('voltage/{site}').describe('status, cmd, read and alarm topics live under it'),
  dataTopic: topicTemplate(TOPIC_PLACEHOLDERS).default('{prefix}/data/{model}'),
  channelTopic: topicTemplate(['site', 'prefix', 'channel']).default('{prefix}/channel/{channel}').describe("a channel's raw points (channels)"),
  qos: z.literal(1).default(1).describe('at least once: the only QoS that store-and-forward can keep'),
  // 1,000 by default (the maximum): the bench's drain needs it (100 held it to ~22k messages/s), and it costs
  // ~0.5 MB (mqtt.js keeps each publish until its PUBACK) and at most that many duplicates after a cut.
  // MQTT 5: the broker's Receive Maximum, when lower, is the window (mosquitto announces max_inflight_messages).
  inflight: z.number().int().min(1).max(1_000).default(1_000).describe("QoS 1 messages awaiting PUBACK at once (MQTT 5: at most the broker's Receive Maximum)"),
  downlink: z
    .strictObject({
      commands: z.boolean().default(false).describe('accept control commands on {prefix}/cmd: a security decision, off by default'),
      read: z.boolean().default(true).describe('answer {prefix}/read with a snapshot of the named models'),
      maxTimeoutMs: positiveMs.default(60_000),
    })
    .prefault({}),
});

/** A cloud that takes JSON batches over HTTP(S): one request per batch, acknowledged by a 2xx answer. */
export const httpLinkSchema = z.strictObject({
  ...commonLinkFields,
  type: z.literal('http'),
  url: z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL, e.g. https://cloud.example.com/ingest' }).describe('where the batches go'),
  method: z.enum(['POST', 'PUT']).default('POST'),
  headers: z.record(z.string().min(1), z.string()).default({}).describe('headers sent as written (no secrets here)'),
  headersEnv: z
    .record(z.string().min(1), z.string().regex(ENV_NAME, 'must be the NAME of an environment variable (never the secret)'))
    .default({})
    .describe('headers whose value is read from an environment variable, e.g. {Authorization: CLOUD_TOKEN}'),
  timeoutMs: positiveMs.default(10_000).describe('a request not answered within it is a failure (sent again, in order)'),
});

/** publish and its options agree: interval needs intervalMs, a deadband is for on-change. */
function checkPublish(l: { publish: string; intervalMs?: number; deadband?: unknown }, ctx: z.RefinementCtx): void {
  if (l.publish === 'interval' && l.intervalMs === undefined)
    ctx.addIssue({ code: 'custom', path: ['publish'], message: 'publish: interval needs intervalMs (the snapshot period)' });
  if (l.publish !== 'interval' && l.intervalMs !== undefined)
    ctx.addIssue({ code: 'custom', path: ['intervalMs'], message: 'intervalMs is for publish: interval' });
  if (l.publish === 'interval' && l.deadband !== undefined)
    ctx.addIssue({
      code: 'custom',
      path: ['deadband'],
      message: 'a deadband is for publish: on-change (an interval snapshot carries the last value of each point)',
    });
}

export const cloudSchema = z.strictObject({
  links: z.array(z.discriminatedUnion('type', [httpLinkSchema, mqttLinkSchema]).superRefine(checkPublish)).default([]),
});

export type MqttLinkConfig = z.output<typeof mqttLinkSchema>;
export type HttpLinkConfig = z.output<typeof httpLinkSchema>;
export type CloudLinkConfig = MqttLinkConfig | HttpLinkConfig;
export type CloudConfig = z.output<typeof cloudSchema>;
