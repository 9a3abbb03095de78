/**
 * The one schema of a site config. It validates the YAML (and CSV point
 * tables), gives the TypeScript types, and is emitted as JSON Schema by
 * `voltage schema` so editors check the files as they are written.
 * Every object is strict: an unknown key is an error, never ignored.
 */
import { z } from 'zod';
import { historyKeepSchema, historySchema } from './history.js';
import { alarmPolicySchema, alarmsSchema, templateAlarmsSchema } from './alarms.js';
import { cloudSchema } from './cloud.js';
import { ruleSchema } from './rules.js';
import { ruleTestSchema } from './ruleTests.js';

export const NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;
export const ID_PATTERN = /^[A-Za-z0-9_-]+$/;
/** `channel:type:point`, the key of `mapping:c2m`. */
export const POINT_REF_PATTERN = /^([A-Za-z0-9_-]+):(m|s|c|a):(\d+)$/;

const name = z.string().regex(NAME_PATTERN, 'must start with a letter or _ and hold only letters, digits and _');
const id = z
  .union([z.string(), z.number().int().nonnegative()])
  .transform((v) => String(v))
  .pipe(z.string().regex(ID_PATTERN, 'must hold only letters, digits, _ and -'));
const positiveMs = z.number().int().positive();

export const backoffSchema = z.strictObject({
  minBackoffMs: positiveMs.default(200),
  maxBackoffMs: positiveMs.default(30_000),
  randomFactor: z.number().min(0).max(1).default(0.2),
  resetBackoffAfterMs: positiveMs.default(60_000),
});

const supervisorSchema = z.strictObject({
  intensity: z.number().int().nonnegative().default(5),
  periodMs: positiveMs.default(30_000),
  backoff: backoffSchema.prefault({}),
});

export const runtimeSchema = z.strictObject({
  site: id.default('site'),
  redis: z
    .strictObject({
      url: z.string().default('redis://127.0.0.1:6379'),
      /** The outbox's bound (history and cloud links read it); sized for a 4 GB box. */
      outboxMaxMB: z
        .number()
        .positive()
        .max(65_536)
        .default(256)
        .describe('bound of the outbox stream in MB; past it the oldest unread entries are dropped and counted'),
      commitLingerMs: z
        .number()
        .int()
        .min(0)
        .max(20)
        .default(0)
        .describe('group commit: how long a poll batch waits for others to share its c2m call (0: those that end in the same event-loop turn)'),
    })
    .prefault({}),
  pollGroupPoints: z
    .number()
    .int()
    .min(0)
    .default(300)
    .describe(
      'channels with one poll period poll together in phases of up to this many points, so that their batches share a c2m call (0: each channel its own phase)',
    ),
  heapGrowingPercent: z
    .number()
    .int()
    .min(0)
    .max(300)
    .optional()
    .describe(
      "the runtime's old generation grows to (1 + this/100) × what a full GC left before the next one starts (0: V8's own, ~1.3 here): fewer full GCs, whose marking fills the thread for ~150 ms each, for more RSS (100: ~25 MB at 100k points/s with 1,000 rules). Default: 100 for a site with rules (their reaction time), 0 otherwise",
    ),
  supervisor: supervisorSchema.prefault({}),
  channels: supervisorSchema.prefault({}).describe('restart policy of the channel supervisor'),
  models: supervisorSchema.prefault({}).describe('restart policy of the model supervisor'),
  log: z.strictObject({ level: z.enum(['trace', 'debug', 'info', 'warn', 'error']).default('info') }).prefault({}),
});

/** Waveforms of the virtual (simulated) device. */
export const simSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('sine'), amplitude: z.number(), periodMs: positiveMs, offset: z.number().default(0), phase: z.number().default(0) }),
  z.strictObject({ kind: z.literal('square'), low: z.number(), high: z.number(), periodMs: positiveMs }),
  z.strictObject({ kind: z.literal('counter'), start: z.number().default(0), step: z.number().default(1), max: z.number().optional() }),
  z.strictObject({ kind: z.literal('random_walk'), start: z.number(), step: z.number().positive(), min: z.number(), max: z.number() }),
  z.strictObject({ kind: z.literal('constant'), value: z.number() }),
]);

export const pointTypeSchema = z.enum(['m', 's', 'c', 'a']).describe('m = measurement, s = signal, c = control, a = adjustment');

/** Where a point lives on a Modbus device. */
export const modbusAddressSchema = z.strictObject({
  unit: z.number().int().min(0).max(247).describe('unit id (slave address)'),
  fn: z
    .union([z.literal(1), z.literal(2), z.literal(3), z.literal(4)])
    .describe('read function: 1 coils, 2 discrete inputs, 3 holding registers, 4 input registers'),
  address: z.number().int().min(0).max(65535),
  dataType: z.enum(['bool', 'int16', 'uint16', 'int32', 'uint32', 'float32', 'float64']).optional().describe('default: bool for functions 1/2, uint16 for 3/4'),
  byteOrder: z.enum(['ABCD', 'CDAB', 'BADC', 'DCBA']).default('ABCD'),
  bit: z.number().int().min(0).max(15).optional().describe('one bit of a 16-bit register'),
  writeFn: z
    .union([z.literal(5), z.literal(6), z.literal(15), z.literal(16)])
    .optional()
    .describe('write function for control/adjustment points; default 5 for coils, 6 or 16 for registers'),
});

/** What every point has, whatever its channel's protocol: all that the channel actor and the models read. */
export const pointFields = {
  type: pointTypeSchema,
  id: z.number().int().nonnegative(),
  name: z.string().optional(),
  unit: z.string().optional(),
  scale: z.number().default(1),
  offset: z.number().default(0),
  /** Report by exception: a value is sent only when it moved more than this since the last sent one. */
  deadband: z.number().nonnegative().default(0),
  min: z.number().optional(),
  max: z.number().optional(),
  /** What history keeps of this point (default: the channel's). */
  history: historyKeepSchema.optional(),
};

/** A point of a protocol that adds nothing of its own (a protocol registered outside this file may use it). */
export const pointSchema = z.strictObject(pointFields);

/**
 * The parsed points of a built-in protocol come out in one object shape each
 * (one literal, all fields present): V8 keeps the fields in-object, and a
 * 100k-point site costs megabytes less than the parser's objects. `Complete`
 * makes a field added to the schema but missed in the literal a type error
 * (one was lost this way once).
 */
type Complete<T> = { [K in keyof Required<T>]: T[K] };

/** A point of a virtual channel: its waveform (required of measurements and signals, checked by the protocol). */
export const virtualPointSchema = z.strictObject({ ...pointFields, sim: simSchema.optional() }).transform(
  (p) =>
    ({
      type: p.type,
      id: p.id,
      name: p.name,
      unit: p.unit,
      scale: p.scale,
      offset: p.offset,
      deadband: p.deadband,
      min: p.min,
      max: p.max,
      history: p.history,
      sim: p.sim,
    }) satisfies Complete<typeof p>,
);

/** A point of a Modbus channel: where it lives, and the waveform `voltage sim` gives it. */
export const modbusPointSchema = z
  .strictObject({
    ...pointFields,
    /** The waveform of a simulated Modbus device (`voltage sim`). */
    sim: simSchema.optional(),
    modbus: modbusAddressSchema,
  })
  .transform(
    (p) =>
      ({
        type: p.type,
        id: p.id,
        name: p.name,
        unit: p.unit,
        scale: p.scale,
        offset: p.offset,
        deadband: p.deadband,
        min: p.min,
        max: p.max,
        history: p.history,
        sim: p.sim,
        modbus: p.modbus,
      }) satisfies Complete<typeof p>,
  );

export const faultSchema = z.strictObject({
  /** The channel's poll throws a fatal error after this many polls (each incarnation counts afresh). */
  crashAfterPolls: z.number().int().positive().optional(),
  /** Fraction (0..1) of points whose reading is not a number, so that they get quality `bad`. */
  garbageRate: z.number().min(0).max(1).default(0),
  /** The link drops after this many polls and the channel reconnects with backoff. */
  dropAfterPolls: z.number().int().positive().optional(),
});

/** What every channel has, whatever its protocol (its points are typed per protocol). */
export const channelFields = {
  id,
  name: z.string().optional(),
  enabled: z.boolean().default(true),
  pollMs: positiveMs.default(1000),
  timeoutMs: positiveMs.default(1000),
  /** Report by exception: a point within its deadband is still re-sent this often. */
  integrityMs: positiveMs.default(60_000),
  /** What history keeps of this channel's points (each point may say otherwise; default on-change). */
  history: historyKeepSchema.optional(),
  reconnect: backoffSchema.prefault({}),
  /** CSV point tables, relative to the config folder; header cells name point fields, dotted for nesting (`sim.kind`). */
  pointsFile: z.union([z.string(), z.array(z.string())]).optional(),
};

const modbusBase = {
  ...channelFields,
  points: z.array(modbusPointSchema).default([]),
  /** Largest run of unused addresses inside one coalesced read. */
  maxGap: z.number().int().min(0).max(124).default(10),
  /** Retries of a request that timed out, before the device is backed off. */
  retries: z.number().int().min(0).max(5).default(1),
  /** Pause between requests on the link (RTU buses need a few ms). */
  interRequestDelayMs: z.number().int().min(0).default(0),
  /** Backoff of one device that stopped answering; the others keep polling. */
  deviceBackoff: backoffSchema.prefault({ minBackoffMs: 1_000, maxBackoffMs: 30_000 }),
};

const serialSchema = z.strictObject({
  path: z.string().min(1),
  baudRate: z.number().int().positive().default(9600),
  parity: z.enum(['none', 'even', 'odd']).default('none'),
  dataBits: z.union([z.literal(7), z.literal(8)]).default(8),
  stopBits: z.union([z.literal(1), z.literal(2)]).default(1),
});

/**
 * The config of a channel of protocol `name` whose points are `point`: the
 * channel fields, the points, and what the protocol adds (`extra`). Every
 * protocol's channel is one of these, told apart by `protocol`.
 */
export function protocolChannelSchema<N extends string, P extends z.ZodType, E extends z.ZodRawShape = Record<never, never>>(name: N, point: P, extra?: E) {
  return z.strictObject({ ...channelFields, protocol: z.literal(name), points: z.array(point).default([]), ...(extra ?? ({} as E)) });
}

export const virtualChannelSchema = protocolChannelSchema('virtual', virtualPointSchema, { fault: faultSchema.optional() });
export const modbusChannelSchemas = [
  z.strictObject({
    ...modbusBase,
    protocol: z.literal('modbus-tcp'),
    host: z.string().default('127.0.0.1'),
    port: z.number().int().min(1).max(65535).default(502),
  }),
  z.strictObject({ ...modbusBase, protocol: z.literal('modbus-rtu-tcp'), host: z.string().default('127.0.0.1'), port: z.number().int().min(1).max(65535) }),
  z.strictObject({ ...modbusBase, protocol: z.literal('modbus-rtu'), serial: serialSchema, interRequestDelayMs: z.number().int().min(0).default(5) }),
] as const;

/** The protocols built in, each one variant of a channel. A protocol registered elsewhere brings its own (actors/channel/protocols.ts). */
export const builtinChannelSchemas = [virtualChannelSchema, ...modbusChannelSchemas] as const;
export const channelSchema = z.discriminatedUnion('protocol', builtinChannelSchemas);

const valueSpec = z.strictObject({ unit: z.string().optional(), description: z.string().optional(), history: historyKeepSchema.optional() });
const calcSpec = z.strictObject({
  expr: z.string().min(1),
  unit: z.string().optional(),
  description: z.string().optional(),
  history: historyKeepSchema.optional(),
});

export const templateSchema = z.strictObject({
  nature: z.enum(['generic', 'pv_inverter', 'battery', 'meter', 'site', 'charger']).default('generic'),
  measurements: z.record(name, valueSpec).default({}),
  controls: z.record(name, valueSpec).default({}),
  calculations: z.record(name, calcSpec).default({}),
  /** Every instance of the template gets these alarms, as `{model}.{id}`. */
  alarms: templateAlarmsSchema,
  /** What history keeps of every value of every instance (a value or a model may say otherwise). */
  history: historyKeepSchema.optional(),
});

export const modelSchema = z.strictObject({
  id,
  name: z.string().optional(),
  template: name.optional(),
  nature: z.enum(['generic', 'pv_inverter', 'battery', 'meter', 'site', 'charger']).optional(),
  measurements: z.record(name, valueSpec).default({}),
  /** Values operators and rules set: each maps to a control (c) or adjustment (a) point. */
  controls: z.record(name, valueSpec).default({}),
  calculations: z.record(name, calcSpec).default({}),
  /** Maps every measurement not in `mapping` to the point of this channel with the same name. */
  channel: id.optional(),
  /** measurement or control name → `channel:type:point` */
  mapping: z.record(name, z.string().regex(POINT_REF_PATTERN, 'must be channel:type:point, e.g. 1001:m:1')).default({}),
  /** What history keeps of this model's values (a value may say otherwise; default: the template's, else on-change). */
  history: historyKeepSchema.optional(),
});

export const roleSchema = z.enum(['viewer', 'operator', 'admin']);

/** The HTTP/WebSocket gateway. Tokens are given as SHA-256 hashes; the tokens themselves are never stored. */
export const gatewaySchema = z.strictObject({
  host: z.string().default('127.0.0.1'),
  port: z.number().int().min(0).max(65535).default(8080),
  tokens: z
    .array(
      z.strictObject({
        name: z.string().min(1).describe('who: written into the audit stream'),
        role: roleSchema,
        sha256: z.string().regex(/^[0-9a-f]{64}$/, 'must be the hex SHA-256 of the token (echo -n TOKEN | sha256sum)'),
      }),
    )
    .default([]),
  rateLimit: z.strictObject({ perSecond: z.number().positive().default(50), burst: z.number().int().positive().default(100) }).prefault({}),
  maxBodyBytes: z.number().int().positive().default(16_384),
  /** Every request answers within this: a 503 past it (a Redis that does not answer never makes a request hang). */
  requestTimeoutMs: positiveMs.default(2_000),
  commandTimeoutMs: positiveMs.default(10_000),
  /** WebSocket feed: deltas coalesced per topic over intervalMs; a client's send buffer is bounded. */
  ws: z.strictObject({ intervalMs: positiveMs.default(100), maxBufferBytes: z.number().int().positive().default(262_144) }).prefault({}),
  /** Origins of pages hosted elsewhere (a dashboard, a Grafana panel) that may call the API from a browser; none by default. */
  cors: z
    .strictObject({
      origins: z
        .array(z.string().regex(/^https?:\/\/[^/\s]+$/, 'must be an origin: scheme://host[:port], no path, e.g. https://grafana.example.com'))
        .default([]),
    })
    .prefault({}),
});

/** What every channel is, whatever its protocol: all that the channel actor, the runtime and the API read. */
const anyChannel = z.object(channelFields);
export type PointConfig = z.output<typeof pointSchema>;
export type ChannelConfig = z.output<typeof anyChannel> & { readonly protocol: string; readonly points: readonly PointConfig[] };

/** One protocol's channel config: a strict object told apart from the others by its literal `protocol`. */
export type ChannelVariantSchema = z.ZodType<ChannelConfig> & z.core.$ZodTypeDiscriminable;

function configSchemaOf<C extends z.ZodType>(channel: C) {
  return z.strictObject({
    $schema: z.string().optional(),
    gateway: gatewaySchema.optional(),
    runtime: runtimeSchema.prefault({}),
    channels: z.array(channel).default([]),
    templates: z.record(name, templateSchema).default({}),
    models: z.array(modelSchema).default([]),
    history: historySchema.optional(),
    alarms: alarmsSchema,
    alarmPolicy: alarmPolicySchema.prefault({}),
    cloud: cloudSchema.optional(),
    rules: z.array(ruleSchema).default([]),
    ruleTests: z.array(ruleTestSchema).default([]).describe('test cases of the rules, run by `voltage rules test`'),
  });
}

/** The config with the built-in protocols: the schema `voltage schema` emits. */
export const configSchema = configSchemaOf(channelSchema);

/** The config whose channels are any of `variants`: what the loader checks, with every protocol registered. */
export function configSchemaWith(variants: readonly [ChannelVariantSchema, ...ChannelVariantSchema[]]) {
  const channel: z.ZodType<ChannelConfig> = z.discriminatedUnion('protocol', variants);
  return configSchemaOf(channel);
}

export type RawConfig = z.input<typeof configSchema>;
export type LoadedConfig = z.output<ReturnType<typeof configSchemaWith>>;
export type RuntimeConfig = z.output<typeof runtimeSchema>;
export type GatewayConfig = z.output<typeof gatewaySchema>;
export type Role = z.output<typeof roleSchema>;
export type PointType = z.output<typeof pointTypeSchema>;
export type SimSpec = z.output<typeof simSchema>;
export type ModbusAddress = z.output<typeof modbusAddressSchema>;
export type VirtualPointConfig = z.output<typeof virtualPointSchema>;
export type ModbusPointConfig = z.output<typeof modbusPointSchema>;
export type VirtualChannelConfig = z.output<typeof virtualChannelSchema>;
export type ModbusChannelConfig = z.output<(typeof modbusChannelSchemas)[number]>;

/** JSON Schema for editors: each YAML file of a config folder holds some of the top-level sections. */
export function jsonSchema(): Record<string, unknown> {
  return {
    ...z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }),
    title: 'VoltageEMS site config (one file of a config folder)',
  };
}
