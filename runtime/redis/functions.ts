/**
 * The one typed wrapper around Redis for the whole runtime: the Functions
 * library (the only place that knows Lua argument order), the reads that
 * actors and CLI commands need, and pub/sub. Nothing else holds an ioredis
 * client.
 *
 * When Redis answers that a function is missing (it restarted without
 * persistence, or someone ran FUNCTION FLUSH), the library and the site's
 * mapping are loaded again and the call is retried once.
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Redis } from 'ioredis';
import { RedisFunctionError } from '../errors.js';
import type { PointType } from '../config/site.js';
import { commandTransitions, type CommandStatus } from '../../machines/commandMachine.js';
import { closeRedis } from './connect.js';

/** lua/voltage.lua, found from the sources (runtime/redis/) and from the bundle (dist/) alike. */
const LIBRARY_TEXT = readFileSync(
  [new URL('../../lua/voltage.lua', import.meta.url), new URL('../lua/voltage.lua', import.meta.url)]
    .map((u) => fileURLToPath(u))
    .find((p) => existsSync(p)) ?? fileURLToPath(new URL('../../lua/voltage.lua', import.meta.url)),
  'utf8',
);

/** The command transitions as a Lua table, generated from machines/commandMachine.ts. */
function luaTransitions(): string {
  const entries = Object.entries(commandTransitions()).map(([from, tos]) => `${from} = { ${tos.map((t) => `${t} = true`).join(', ')} }`);
  return `{ ${entries.join(', ')} }`;
}

/** The library as loaded: the file with its generated parts filled in. */
export const LIBRARY_SOURCE = LIBRARY_TEXT.replace('local COMMAND_TRANSITIONS = {} --@@COMMAND_TRANSITIONS@@', `local COMMAND_TRANSITIONS = ${luaTransitions()}`);

export type Quality = 'good' | 'stale' | 'bad' | 'comm-failure';
export const QUALITIES: readonly Quality[] = ['good', 'stale', 'bad', 'comm-failure'];

export interface PointSample {
  readonly type: PointType;
  readonly id: number;
  /** null: no usable value this time; only the quality is written. */
  readonly value: number | null;
  /**
   * null: unchanged since this channel last sent it, so not written again (c2m in
   * lua/voltage.lua). A channel sends a quality whenever it changes, and a value
   * only with quality good.
   */
  readonly quality: Quality | null;
}

/**
 * One poll's points as the text c2m parses ("type id value quality\n" a point),
 * written into a buffer that a channel reuses poll after poll: at 1,000 polls/s
 * of 100 points, building strings and objects per point was a third of what the
 * runtime allocated. Reuse it only after the c2m that sent it has settled.
 */
export class C2mBatch {
  private buf = Buffer.allocUnsafe(4096);
  private len = 0;
  /** Points added since the last clear. */
  count = 0;

  static of(points: readonly PointSample[]): C2mBatch {
    const b = new C2mBatch();
    for (const p of points) b.add(p.type, p.id, p.value, p.quality);
    return b;
  }

  clear(): void {
    this.len = 0;
    this.count = 0;
  }

  /** A value of null: none this time (a quality mark); a quality of null: unchanged (see PointSample). */
  add(type: PointType, id: number, value: number | null, quality: Quality | null): void {
    const text = value === null ? '' : formatValue(value);
    const need = this.len + text.length + 40; // type, id, quality, separators
    if (need > this.buf.length) {
      const grown = Buffer.allocUnsafe(Math.max(need, this.buf.length * 2));
      this.buf.copy(grown, 0, 0, this.len);
      this.buf = grown;
    }
    let n = this.len;
    n += this.buf.write(type, n, 'latin1');
    this.buf[n++] = 0x20;
    n += this.buf.write(String(id), n, 'latin1');
    this.buf[n++] = 0x20;
    n += this.buf.write(text, n, 'latin1');
    this.buf[n++] = 0x20;
    if (quality !== null) n += this.buf.write(quality, n, 'latin1');
    this.buf[n++] = 0x0a;
    this.len = n;
    this.count += 1;
  }

  /** The text so far (a view: valid until the next add or clear). */
  bytes(): Buffer {
    return this.buf.subarray(0, this.len);
  }
}

export interface C2mResult { readonly points: number; readonly models: number; readonly historyDropped: number; readonly cloudDropped: number }

export interface ModelValue { readonly name: string; readonly value: number | null; readonly quality: Quality }

export interface SiteDescription {
  readonly site: string;
  readonly json: string;
  /** channel:type:point → model:name (measurements) */
  readonly mapping: ReadonlyMap<string, string>;
  /** model:name → channel:type:point|min|max (controls and the point they write) */
  readonly controls: ReadonlyMap<string, string>;
}

/** What `site:config` holds (written at start by runtime/runtime.ts describeSite). */
export interface SiteJson {
  readonly site: string;
  readonly channels: ReadonlyArray<{ id: string; name: string; protocol: string; pollMs: number; points: ReadonlyArray<{ type: PointType; id: number; name: string | null; unit: string | null }> }>;
  readonly models: ReadonlyArray<{
    id: string; name: string; nature: string;
    measurements: ReadonlyArray<{ name: string; unit: string | null }>;
    controls: ReadonlyArray<{ name: string; point: string; min: number | null; max: number | null }>;
    calculations: ReadonlyArray<{ name: string; expr: string; unit: string | null }>;
  }>;
}

export interface CommandRecord {
  readonly id: string;
  readonly model: string;
  readonly name: string;
  readonly channel: string;
  readonly value: number;
  readonly status: CommandStatus;
  readonly message: string;
  readonly source: string;
  readonly createdAt: number;
  readonly updatedAt: number;
  readonly deadline: number;
  readonly readback: number | null;
}

export interface CommandEntry {
  readonly entryId: string;
  readonly id: string;
  readonly type: PointType;
  readonly point: number;
  readonly value: number;
  readonly deadline: number;
}

export interface ValueRecord { readonly value: number | null; readonly ts: number | null; readonly quality: Quality | null }

/** Numbers are written with fixed precision (DESIGN.md §4). */
export function formatValue(v: number): string {
  return v.toFixed(6);
}

export const KEYS = {
  mappingC2m: 'mapping:c2m',
  mappingM2c: 'mapping:m2c',
  mappingC2mNext: 'mapping:c2m:next',
  mappingM2cNext: 'mapping:m2c:next',
  history: 'hissrv:queue',
  cloud: 'cloud:queue',
  queueStats: 'stats:queues',
  siteConfig: 'site:config',
  actors: 'actors',
  actor: (id: string) => `actor:${id}`,
  channel: (ch: string, t: PointType) => `comsrv:${ch}:${t}`,
  model: (m: string) => `modsrv:${m}:measurement`,
  modelUpdate: (m: string) => `modsrv:${m}:update`,
  channelUpdate: (ch: string) => `comsrv:${ch}:update`,
  commandSeq: 'cmd:seq',
  command: (id: string) => `command:${id}`,
  commandStream: (ch: string) => `cmd:${ch}`,
  commandHint: (ch: string) => `cmd:${ch}:hint`,
  commandResult: 'cmd:result',
  audit: 'audit:commands',
  actorUpdate: 'actor:update',
} as const;

const POINT_TYPES: readonly PointType[] = ['m', 's', 'c', 'a'];

function isMissingFunction(e: unknown): boolean {
  return e instanceof Error && /Function not found|No such library/i.test(e.message);
}

export interface QueueLimits { readonly historyMaxLen: number; readonly cloudMaxLen: number }

export class VoltageRedis {
  readonly client: Redis;
  private readonly limits: QueueLimits;
  /** Kept to restore the site after Redis lost it; the mappings as text, not 2 strings a point. */
  private site: { readonly json: string; readonly mapping: string; readonly size: number; readonly controls: string; readonly controlCount: number } | undefined;
  private readonly channelKeys = new Map<string, string[]>();
  private reloading: Promise<void> | undefined;
  /** How often the site had to be restored because Redis lost it: writers that send only changes send everything again after it grows. */
  restorations = 0;

  constructor(client: Redis, limits: QueueLimits) {
    this.client = client;
    this.limits = limits;
  }

  /** FUNCTION LOAD REPLACE, then (when a site was loaded before) its mapping again. */
  async loadLibrary(): Promise<void> {
    await this.client.call('FUNCTION', 'LOAD', 'REPLACE', LIBRARY_SOURCE);
  }

  /** Loads the library and the site's mapping; remembered so that a reload can restore both. */
  async loadSite(site: SiteDescription): Promise<void> {
    let text = '';
    for (const [k, v] of site.mapping) text += `${k} ${v}\n`;
    let controls = '';
    for (const [k, v] of site.controls) controls += `${k} ${v}\n`;
    this.site = { json: site.json, mapping: text, size: site.mapping.size, controls, controlCount: site.controls.size };
    await this.loadLibrary();
    await this.stageAndLoad(this.site);
  }

  /** Stages the mapping in chunks, then swaps it in with one site_load (readers never see half a mapping). */
  private async stageAndLoad(site: NonNullable<VoltageRedis['site']>): Promise<void> {
    try {
      await this.stageAndLoadUnwrapped(site);
    } catch (e) {
      throw new RedisFunctionError('site_load', (e as Error).message, { cause: e });
    }
  }

  private async stageAndLoadUnwrapped(site: NonNullable<VoltageRedis['site']>): Promise<void> {
    await this.client.del(KEYS.mappingC2mNext, KEYS.mappingM2cNext);
    for (const [kind, text] of [['c2m', site.mapping], ['m2c', site.controls]] as const) {
      let chunk: string[] = [];
      const flush = async () => {
        if (chunk.length === 0) return;
        await this.client.fcall('site_stage', 2, KEYS.mappingC2mNext, KEYS.mappingM2cNext, kind, ...chunk);
        chunk = [];
      };
      for (const line of text.split('\n')) {
        if (!line) continue;
        const sp = line.indexOf(' ');
        chunk.push(line.slice(0, sp), line.slice(sp + 1));
        if (chunk.length >= 10_000) await flush();
      }
      await flush();
    }
    await this.client.fcall('site_load', 6, KEYS.mappingC2m, KEYS.mappingM2c, KEYS.siteConfig, KEYS.actors, KEYS.mappingC2mNext, KEYS.mappingM2cNext, site.json, site.size, site.controlCount);
  }

  private async reload(): Promise<void> {
    this.reloading ??= (async () => {
      try {
        await this.loadLibrary();
        const site = this.site;
        if (site && (await this.client.exists(KEYS.siteConfig)) === 0) {
          await this.stageAndLoad(site);
          this.restorations += 1;
        }
      } finally {
        this.reloading = undefined;
      }
    })();
    return this.reloading;
  }

  private async fcall(fn: string, keys: readonly string[], args: readonly (string | number | Buffer)[]): Promise<unknown> {
    try {
      return await this.client.fcall(fn, keys.length, ...keys, ...args);
    } catch (e) {
      if (!isMissingFunction(e)) throw new RedisFunctionError(fn, (e as Error).message, { cause: e });
    }
    await this.reload();
    try {
      return await this.client.fcall(fn, keys.length, ...keys, ...args);
    } catch (e) {
      throw new RedisFunctionError(fn, (e as Error).message, { cause: e });
    }
  }

  /** One poll's points of one channel, atomically (see c2m in lua/voltage.lua). */
  async c2m(channel: string, ts: number, points: C2mBatch | readonly PointSample[]): Promise<C2mResult> {
    let keys = this.channelKeys.get(channel);
    if (!keys) {
      keys = [KEYS.mappingC2m, KEYS.history, KEYS.cloud, KEYS.queueStats];
      for (const t of POINT_TYPES) {
        const base = KEYS.channel(channel, t);
        keys.push(base, `${base}:ts`, `${base}:q`);
      }
      this.channelKeys.set(channel, keys);
    }
    const batch = points instanceof C2mBatch ? points : C2mBatch.of(points);
    const r = (await this.fcall('c2m', keys, [channel, ts, this.limits.historyMaxLen, this.limits.cloudMaxLen, batch.bytes()])) as number[];
    return { points: r[0]!, models: r[1]!, historyDropped: r[2]!, cloudDropped: r[3]! };
  }

  /** Calculated values of one model. */
  async modelSet(model: string, ts: number, values: readonly ModelValue[]): Promise<number> {
    const base = KEYS.model(model);
    const args: (string | number)[] = [model, ts, this.limits.historyMaxLen];
    for (const v of values) args.push(v.name, v.value === null ? '' : formatValue(v.value), v.quality);
    return (await this.fcall('model_set', [base, `${base}:ts`, `${base}:q`, KEYS.history, KEYS.queueStats], args)) as number;
  }

  async actorReport(id: string, fields: Readonly<Record<string, string | number>>): Promise<number> {
    const args: (string | number)[] = [id];
    for (const [k, v] of Object.entries(fields)) args.push(k, v);
    return (await this.fcall('actor_report', [KEYS.actor(id), KEYS.actors], args)) as number;
  }

  // ---- commands ----

  /** Sends a control command; rejects with a RedisFunctionError saying why when it is not valid. */
  async m2c(model: string, name: string, value: number, source: string, timeoutMs: number): Promise<string> {
    if (!Number.isFinite(value)) throw new RedisFunctionError('m2c', `value must be a finite number, got ${value}`);
    return (await this.fcall('m2c', [KEYS.mappingM2c, KEYS.commandSeq], [model, name, formatValue(value), source, Date.now(), timeoutMs])) as string;
  }

  async commandResult(channel: string, id: string, status: Exclude<CommandStatus, 'pending'>, message: string, group: string, entryId: string, readback: number | null): Promise<void> {
    await this.fcall('cmd_result', [KEYS.command(id), KEYS.commandStream(channel)], [id, status, message, Date.now(), group, entryId, readback === null ? '' : formatValue(readback)]);
  }

  async command(id: string): Promise<CommandRecord | undefined> {
    const h = await this.client.hgetall(KEYS.command(id));
    if (!h.id) return undefined;
    return {
      id: h.id, model: h.model ?? '', name: h.name ?? '', channel: h.channel ?? '', value: Number(h.value),
      status: h.status as CommandStatus, message: h.message ?? '', source: h.source ?? '',
      createdAt: Number(h.createdAt), updatedAt: Number(h.updatedAt), deadline: Number(h.deadline),
      readback: h.readback ? Number(h.readback) : null,
    };
  }

  async ensureCommandGroup(channel: string, group: string): Promise<void> {
    try {
      await this.client.xgroup('CREATE', KEYS.commandStream(channel), group, '0', 'MKSTREAM');
    } catch (e) {
      if (!/BUSYGROUP/.test((e as Error).message)) throw e;
    }
  }

  /**
   * Commands for a channel's consumer: with `pending`, those delivered before and not
   * acknowledged (after a restart); otherwise new ones. Never blocks.
   */
  async readCommands(channel: string, group: string, consumer: string, pending: boolean, count = 16): Promise<CommandEntry[]> {
    const res = (await this.client.xreadgroup('GROUP', group, consumer, 'COUNT', count, 'STREAMS', KEYS.commandStream(channel), pending ? '0' : '>')) as
      Array<[string, Array<[string, string[] | null]>]> | null;
    const out: CommandEntry[] = [];
    for (const [, entries] of res ?? []) {
      for (const [entryId, fields] of entries) {
        if (!fields) continue; // deleted while pending
        const f: Record<string, string> = {};
        for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i]!] = fields[i + 1]!;
        out.push({ entryId, id: f.id ?? '', type: f.type as PointType, point: Number(f.point), value: Number(f.value), deadline: Number(f.deadline) });
      }
    }
    return out;
  }

  /** The site as loaded (the JSON that describeSite made), or undefined before any load. */
  async siteDescription(): Promise<SiteJson | undefined> {
    const text = await this.client.get(KEYS.siteConfig);
    return text ? (JSON.parse(text) as SiteJson) : undefined;
  }

  /** The audit entries of one command, oldest first (a scan of the bounded audit stream). */
  async auditOf(id: string, stream: string = KEYS.audit): Promise<Array<Record<string, string>>> {
    const entries = await this.client.xrevrange(stream, '+', '-', 'COUNT', 5000);
    return entries
      .map(([, fields]) => {
        const f: Record<string, string> = {};
        for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i]!] = fields[i + 1]!;
        return f;
      })
      .filter((f) => f.id === id)
      .reverse();
  }

  /** A command refused before it was recorded, for the audit stream (accepted ones are written by m2c). */
  async auditRejected(who: string, model: string, name: string, value: unknown, message: string): Promise<void> {
    await this.client.xadd(KEYS.audit, 'MAXLEN', '~', '100000', '*', 'event', 'rejected', 'id', '', 'who', who,
      'model', model, 'name', name, 'value', String(value), 'at', String(Date.now()), 'message', message);
  }

  async libraryVersion(): Promise<string> {
    return (await this.client.fcall_ro('voltage_version', 0)) as string;
  }

  // ---- reads ----

  async values(hashBase: string): Promise<Map<string, ValueRecord>> {
    const [v, t, q] = (await this.client.multi().hgetall(hashBase).hgetall(`${hashBase}:ts`).hgetall(`${hashBase}:q`).exec()) ?? [];
    const vals = (v?.[1] ?? {}) as Record<string, string>;
    const tss = (t?.[1] ?? {}) as Record<string, string>;
    const qs = (q?.[1] ?? {}) as Record<string, string>;
    const out = new Map<string, ValueRecord>();
    for (const name of new Set([...Object.keys(vals), ...Object.keys(qs)])) {
      out.set(name, {
        value: vals[name] !== undefined ? Number(vals[name]) : null,
        ts: tss[name] !== undefined ? Number(tss[name]) : null,
        quality: (qs[name] as Quality | undefined) ?? null,
      });
    }
    return out;
  }

  modelValues(model: string): Promise<Map<string, ValueRecord>> {
    return this.values(KEYS.model(model));
  }

  channelValues(channel: string, type: PointType): Promise<Map<string, ValueRecord>> {
    return this.values(KEYS.channel(channel, type));
  }

  async actors(): Promise<Array<Record<string, string>>> {
    const ids = await this.client.smembers(KEYS.actors);
    const pipe = this.client.pipeline();
    for (const id of ids) pipe.hgetall(KEYS.actor(id));
    const res = (await pipe.exec()) ?? [];
    return res.map(([, v], i) => ({ id: ids[i]!, ...(v as Record<string, string>) }));
  }

  async queueStats(): Promise<{ historyLen: number; cloudLen: number; dropped: Record<string, string> }> {
    const [h, c, d] = (await this.client.multi().xlen(KEYS.history).xlen(KEYS.cloud).hgetall(KEYS.queueStats).exec()) ?? [];
    return { historyLen: Number(h?.[1] ?? 0), cloudLen: Number(c?.[1] ?? 0), dropped: (d?.[1] ?? {}) as Record<string, string> };
  }

  async ping(): Promise<void> {
    await this.client.ping();
  }

  /** A pub/sub hub on its own connection (a subscribed connection can do nothing else). */
  subscriber(): Subscriptions {
    return new Subscriptions(this.client.duplicate({ connectionName: 'voltage:sub' }));
  }

  async close(): Promise<void> {
    await closeRedis(this.client);
  }
}

export type MessageHandler = (message: string, channel: string) => void;

/** One subscriber connection shared by every actor of the process; handlers by channel. */
export class Subscriptions {
  private readonly conn: Redis;
  private readonly handlers = new Map<string, Set<MessageHandler>>();
  private readonly patternHandlers = new Map<string, Set<MessageHandler>>();

  constructor(conn: Redis) {
    this.conn = conn;
    // Connection errors are retried by ioredis (and subscriptions renewed); the main connection logs them.
    this.conn.on('error', () => undefined);
    this.conn.on('message', (channel: string, message: string) => {
      const hs = this.handlers.get(channel);
      if (hs) for (const h of hs) h(message, channel);
    });
    this.conn.on('pmessage', (pattern: string, channel: string, message: string) => {
      const hs = this.patternHandlers.get(pattern);
      if (hs) for (const h of hs) h(message, channel);
    });
  }

  /** Called each time the connection is ready again after a loss (ioredis renews the subscriptions itself). */
  onReconnect(listener: () => void): void {
    let first = this.conn.status === 'ready';
    this.conn.on('ready', () => {
      if (first) listener();
      first = true;
    });
  }

  /** Resolves once Redis confirms the subscription; returns the unsubscribe function. */
  on(channel: string, handler: MessageHandler): Promise<() => Promise<void>> {
    return this.add(this.handlers, channel, handler, (c) => this.conn.subscribe(c), (c) => this.conn.unsubscribe(c));
  }

  /** A pattern subscription (PSUBSCRIBE); the handler gets the message and the channel it came on. */
  onPattern(pattern: string, handler: MessageHandler): Promise<() => Promise<void>> {
    return this.add(this.patternHandlers, pattern, handler, (p) => this.conn.psubscribe(p), (p) => this.conn.punsubscribe(p));
  }

  /** Redis subscribes once per channel or pattern, however many handlers share it. */
  private async add(
    map: Map<string, Set<MessageHandler>>, key: string, handler: MessageHandler,
    subscribe: (key: string) => Promise<unknown>, unsubscribe: (key: string) => Promise<unknown>,
  ): Promise<() => Promise<void>> {
    let hs = map.get(key);
    if (!hs) {
      hs = new Set();
      map.set(key, hs);
      await subscribe(key);
    }
    hs.add(handler);
    return async () => {
      const set = map.get(key);
      if (!set) return;
      set.delete(handler);
      if (set.size === 0) {
        map.delete(key);
        if (this.conn.status === 'ready') await unsubscribe(key).catch(() => undefined);
      }
    };
  }

  async close(): Promise<void> {
    await closeRedis(this.conn);
  }
}
