/**
 * Binds one cloud link to Redis and an MQTT broker (mqtt.js): the outbox read
 * through the link's own consumer group, messages built per model
 * (messages.ts), published at QoS 1 within a bounded in-flight window, and an
 * entry XACKed only once every message built from it was PUBACKed.
 *
 * Order and seq: entries are published in stream order; after a reconnect the
 * entries this consumer holds unacknowledged (its PEL) are sent again first,
 * in the same order, before anything new. Each entry's first seq and message
 * count are kept in Redis (`cloud:{link}:inflight`) from before its first
 * publish until its XACK, written in one MULTI with the link's last seq
 * (`cloud:{link}:seq`): a resend carries the seqs it had, across a restart of
 * the runtime too, so seqs have no gaps and a consumer drops duplicates by seq.
 * The link is the only writer of its two keys.
 *
 * Backlog: what the link could not send stays in the outbox, bounded per link
 * by maxBacklogMB (estimated from the outbox's mean entry size); past it, the
 * oldest unsent entries are acknowledged unsent by a second consumer of the
 * group and counted (`cloud:{link}:stats` dropped, a warning log). The outbox's
 * own bound drops and counts too (c2m).
 *
 * It never publishes an entry out of order and never acknowledges one that
 * the broker has not PUBACKed.
 */
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { isAbsolute, join } from 'node:path';
import { connect as mqttConnect, type IClientOptions, type MqttClient } from 'mqtt';
import type { Redis } from 'ioredis';
import type { CloudLinkConfig } from '../../runtime/config/cloud.js';
import { errorMessage } from '../../runtime/errors.js';
import type { Logger } from '../../runtime/logger.js';
import { KEYS } from '../../runtime/redis/keys.js';
import type { VoltageRedis } from '../../runtime/redis/voltageRedis.js';
import { EMPTY_STATS, type UplinkEvent, type UplinkStats } from '../../machines/cloudMachine.js';
import { decodeEntry, OutboxFormatError } from '../history/outbox.js';
import { OutboxConsumer, OutboxOutageError, type ModelValueTarget, type StreamEntries } from '../outbox/consumer.js';
import { CloudDownlink } from './downlink.js';
import { buildMessages, fillTopic, linkTopics, messagePayload, planSeqs, type EntrySeqs, type ModelMessage } from './messages.js';
import { InflightWindow } from './window.js';
import { settled } from '../../runtime/reporter.js';

/** Transient to the machine: the broker or Redis is unreachable; retried with backoff. */
export class CloudOutageError extends OutboxOutageError {}

const READ_BLOCK_MS = 500;
const CONNECT_TIMEOUT_MS = 5_000;
const MAPPING_REFRESH_MS = 60_000;
/** The most entries the backlog bound drops at once. */
const TRIM_MAX = 10_000;

export interface CloudSite {
  readonly id: string;
  readonly dir: string;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

function withTimeout<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} within ${ms} ms`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

export class CloudLink {
  readonly topics: ReturnType<typeof linkTopics>;
  readonly group: string;
  private readonly outbox: OutboxConsumer;
  private readonly trimmer: OutboxConsumer;
  private readonly downlink: CloudDownlink;
  private client: MqttClient | undefined;
  private mapping = new Map<string, ModelValueTarget>();
  private mappingReadAt = 0;
  private lastSeq = 0;
  private readonly stats: Mutable<UplinkStats> = { ...EMPTY_STATS };
  private readonly models: ReadonlySet<string> | undefined;

  constructor(
    private readonly redis: Redis,
    private readonly bus: VoltageRedis,
    readonly cfg: CloudLinkConfig,
    private readonly site: CloudSite,
    private readonly log: Logger,
  ) {
    this.topics = linkTopics(cfg.prefix, site.id);
    this.group = KEYS.cloudGroup(cfg.id);
    this.outbox = new OutboxConsumer(redis, KEYS.outbox, this.group, 'link');
    this.trimmer = new OutboxConsumer(redis, KEYS.outbox, this.group, 'bound');
    this.models = cfg.models ? new Set(cfg.models) : undefined;
    this.downlink = new CloudDownlink(bus, { link: cfg.id, ...cfg.downlink }, this.topics, (t, p) => this.publishResult(t, p), log);
  }

  /**
   * The consumer group exists, so that c2m writes the outbox from now on, even
   * while the broker is unreachable (the backlog is what store-and-forward keeps).
   */
  async ensureGroup(): Promise<void> {
    await this.outbox.ensureGroup();
  }

  /** Connects to the broker, publishes the birth message, subscribes to the downlink topics. */
  async connect(): Promise<void> {
    this.dropClient();
    await this.outbox.ensureGroup();
    await this.readMapping();
    try {
      this.lastSeq = Number((await this.redis.get(KEYS.cloudSeq(this.cfg.id))) ?? 0);
    } catch (e) {
      throw new CloudOutageError(`Redis: ${errorMessage(e)}`);
    }
    const client = mqttConnect(this.cfg.url, this.clientOptions());
    this.client = client;
    try {
      await new Promise<void>((resolve, reject) => {
        client.once('connect', () => resolve());
        client.once('error', (e) => reject(e));
        client.once('close', () => reject(new Error('the connection closed before the broker accepted it')));
      });
      // DESIGN.md §8: with Nagle's algorithm small publishes wait 20–65 ms.
      (client.stream as Partial<Socket>).setNoDelay?.(true);
      // A broker that accepted the connection and then went silent must not hold the link in connecting.
      await withTimeout(
        CONNECT_TIMEOUT_MS,
        'the broker did not acknowledge the birth message',
        (async () => {
          await client.publishAsync(this.topics.status, JSON.stringify({ status: 'online', ts: Date.now() }), { qos: 1, retain: true });
          const subs = this.downlink.subscriptions();
          if (subs.length > 0) await client.subscribeAsync(subs, { qos: 1 });
        })(),
      );
    } catch (e) {
      this.dropClient();
      throw new CloudOutageError(`${this.cfg.url}: ${errorMessage(e)}`);
    }
    this.log.info({ url: this.cfg.url, seq: this.lastSeq }, 'cloud link online');
  }

  /** Runs the uplink on the connected client until the connection is lost (reported once with LOST); returns its stop. */
  uplink(sendBack: (e: UplinkEvent) => void): () => void {
    const client = this.client;
    let stopped = false;
    const lost = (why: string) => {
      if (stopped) return;
      stopped = true;
      sendBack({ type: 'LOST', error: why });
    };
    if (!client) {
      queueMicrotask(() => lost('not connected'));
      return () => {
        stopped = true;
      };
    }
    client.on('close', () => lost('the connection to the broker closed'));
    client.on('error', (e) => lost(errorMessage(e)));
    client.on('message', (topic, payload) => {
      void this.downlink.handle(topic, payload.toString());
    });
    this.pump(client, () => stopped).catch((e: unknown) => lost(errorMessage(e)));
    return () => {
      stopped = true;
      client.removeAllListeners('message');
    };
  }

  /** The counters, the backlog measured and bounded (called every second, online or not). */
  async monitor(): Promise<UplinkStats> {
    const q = await this.bus.telemetry.outboxStats();
    const g = q.groups.find((x) => x.name === this.group);
    if (!g) return { ...this.stats };
    const backlog = (g.lag ?? 0) + g.pending;
    const meanBytes = q.length > 0 ? q.bytes / q.length : 0;
    const excess = Math.ceil((backlog * meanBytes - this.cfg.maxBacklogMB * 2 ** 20) / Math.max(1, meanBytes));
    if (meanBytes > 0 && excess > 0 && g.lag) await this.trim(Math.min(excess, g.lag, TRIM_MAX));
    const stats = await this.redis.hgetall(KEYS.cloudStats(this.cfg.id));
    this.stats.dropped = Number(stats.dropped ?? 0);
    this.stats.refused = Number(stats.refused ?? 0);
    this.stats.lag = backlog;
    return { ...this.stats };
  }

  /** Says goodbye (retained offline) when it can, and closes the connection. */
  async close(): Promise<void> {
    const client = this.client;
    if (client?.connected) {
      const bye = client.publishAsync(this.topics.status, JSON.stringify({ status: 'offline', ts: Date.now() }), { qos: 1, retain: true });
      await Promise.race([settled(bye, { source: 'cloud offline status', link: this.cfg.id }), new Promise((r) => setTimeout(r, 1_000))]);
    }
    this.dropClient();
  }

  private dropClient(): void {
    const c = this.client;
    this.client = undefined;
    if (!c) return;
    c.removeAllListeners('message');
    c.on('error', () => undefined);
    // Forced: the in-flight publishes fail at once; their entries stay pending and are sent again.
    c.end(true);
  }

  private clientOptions(): IClientOptions {
    const c = this.cfg;
    const file = (p: string) => readFileSync(isAbsolute(p) ? p : join(this.site.dir, p));
    const password = c.passwordEnv ? process.env[c.passwordEnv] : undefined;
    if (c.passwordEnv && password === undefined) this.log.warn({ env: c.passwordEnv }, 'cloud link: the password variable is not set');
    return {
      clientId: c.clientId ?? `voltage-${this.site.id}-${c.id}`,
      username: c.username,
      password,
      protocolVersion: c.protocolVersion,
      keepalive: c.keepaliveS,
      // The outbox is the session: the link resends from its consumer group, not from the broker's.
      clean: true,
      reconnectPeriod: 0,
      connectTimeout: CONNECT_TIMEOUT_MS,
      will: { topic: this.topics.status, payload: Buffer.from(JSON.stringify({ status: 'offline' })), qos: 1, retain: true },
      ...(c.tls
        ? {
            ca: c.tls.ca ? file(c.tls.ca) : undefined,
            cert: c.tls.cert ? file(c.tls.cert) : undefined,
            key: c.tls.key ? file(c.tls.key) : undefined,
            rejectUnauthorized: c.tls.rejectUnauthorized,
          }
        : {}),
    };
  }

  private async readMapping(): Promise<void> {
    this.mapping = await this.outbox.readMapping();
    this.mappingReadAt = Date.now();
  }

  /** Reads, publishes and acknowledges batch after batch, pending ones first; paced while draining. */
  private async pump(client: MqttClient, stopped: () => boolean): Promise<void> {
    const window = new InflightWindow(this.cfg.inflight);
    let drainStartedAt = 0;
    let drained = 0;
    while (!stopped()) {
      if (Date.now() - this.mappingReadAt > MAPPING_REFRESH_MS) await this.readMapping();
      const resend = this.outbox.pendingMayExist;
      const entries = await this.outbox.next(this.cfg.batchEntries, READ_BLOCK_MS);
      if (stopped()) return; // what was read stays pending: sent again, first, after the reconnect
      if (entries.length === 0) continue;
      await this.send(client, entries, window, stopped, resend);
      if (entries.length < this.cfg.batchEntries) {
        drainStartedAt = 0;
        continue;
      }
      // A full batch: a backlog. Drain at drainRatePerS while new entries keep coming.
      const now = Date.now();
      if (drainStartedAt === 0) {
        drainStartedAt = now;
        drained = 0;
      }
      drained += entries.length;
      const dueAt = drainStartedAt + (drained / this.cfg.drainRatePerS) * 1_000;
      if (dueAt > now) await new Promise((r) => setTimeout(r, dueAt - now));
    }
  }

  private async send(client: MqttClient, entries: StreamEntries, window: InflightWindow, stopped: () => boolean, resend: boolean): Promise<void> {
    const opts = { mapping: this.mapping, models: this.models, quality: this.cfg.include.quality, timestamps: this.cfg.include.timestamps };
    const built: Array<{ id: string; msgs: ModelMessage[] }> = [];
    const empty: string[] = [];
    for (const [id, fields] of entries) {
      // An entry the outbox's bound trimmed comes back from the pending list with no fields (c2m counted it).
      if (!fields || fields.length === 0) {
        empty.push(id);
        continue;
      }
      try {
        const msgs = buildMessages(decodeEntry(fields), opts);
        if (msgs.length > 0) built.push({ id, msgs });
        else empty.push(id);
      } catch (e) {
        if (!(e instanceof OutboxFormatError)) throw e;
        empty.push(id);
        this.log.warn({ entry: id, err: e.message }, 'cloud: skipped an outbox entry that is not in the outbox format');
      }
    }
    const seqs = await this.seqsOf(built, resend);
    const acks: Array<Promise<void>> = [];
    let resent = 0;
    for (let i = 0; i < built.length; i++) {
      const { msgs } = built[i]!;
      const { first, count, again } = seqs[i]!;
      // A resend after the mapping changed: the seqs it had are kept, a message more has none and is left out.
      for (let k = 0; k < Math.min(count, msgs.length); k++) {
        await window.acquire();
        if (stopped()) {
          window.release();
          void Promise.allSettled(acks);
          throw new CloudOutageError('the connection was lost while publishing');
        }
        const m = msgs[k]!;
        const topic = fillTopic(this.cfg.dataTopic, { site: this.site.id, prefix: this.topics.prefix, model: m.model, channel: m.channel });
        if (again) resent += 1;
        acks.push(
          new Promise<void>((resolve, reject) => {
            client.publish(topic, messagePayload(first + k, m, this.cfg.include.timestamps), { qos: 1 }, (err, packet) => {
              window.release();
              const code = (packet as { reasonCode?: number } | undefined)?.reasonCode ?? 0;
              if (err || code >= 0x80)
                reject(
                  Object.assign(new CloudOutageError(err ? errorMessage(err) : `the broker refused a publish (reason code ${code})`), {
                    refused: !err || code >= 0x80,
                  }),
                );
              else resolve();
            });
          }),
        );
      }
    }
    try {
      await Promise.all(acks);
    } catch (e) {
      if ((e as { refused?: boolean }).refused)
        await settled(this.redis.hincrby(KEYS.cloudStats(this.cfg.id), 'refused', 1), { source: 'cloud refused count', link: this.cfg.id });
      throw e;
    }
    const ids = [...built.map((b) => b.id), ...empty];
    const tx = this.redis.multi().xack(KEYS.outbox, this.group, ...ids);
    if (built.length > 0) tx.hdel(KEYS.cloudInflight(this.cfg.id), ...built.map((b) => b.id));
    await tx.exec();
    const last = seqs[seqs.length - 1];
    this.stats.published += acks.length;
    this.stats.resent += resent;
    this.stats.entries += ids.length;
    if (last) this.stats.seq = Math.max(this.stats.seq, last.first + last.count - 1);
  }

  /** The seqs of each entry's messages: those it was given before (a resend), or new ones, recorded before the first publish. */
  private async seqsOf(built: ReadonlyArray<{ id: string; msgs: ModelMessage[] }>, resend: boolean): Promise<EntrySeqs[]> {
    if (built.length === 0) return [];
    const key = KEYS.cloudInflight(this.cfg.id);
    const known = resend ? await this.redis.hmget(key, ...built.map((b) => b.id)) : [];
    const plan = planSeqs(
      built.map((b) => b.msgs.length),
      known,
      this.lastSeq,
    );
    if (plan.record.length > 0) {
      await this.redis
        .multi()
        .set(KEYS.cloudSeq(this.cfg.id), String(plan.lastSeq))
        .hset(key, ...plan.record.flatMap(([i, v]) => [built[i]!.id, v]))
        .exec();
      this.lastSeq = plan.lastSeq;
    }
    return plan.seqs;
  }

  /** Drops the `n` oldest entries this link has not read: acknowledged unsent, counted. */
  private async trim(n: number): Promise<void> {
    const entries = await this.trimmer.read(n, undefined, '>');
    if (entries.length === 0) return;
    await this.redis
      .multi()
      .xack(KEYS.outbox, this.group, ...entries.map(([id]) => id))
      .hincrby(KEYS.cloudStats(this.cfg.id), 'dropped', entries.length)
      .exec();
    this.log.warn(
      { dropped: entries.length, maxBacklogMB: this.cfg.maxBacklogMB },
      'cloud link: its backlog passed maxBacklogMB; the oldest unsent entries were dropped',
    );
  }

  private async publishResult(topic: string, payload: string): Promise<void> {
    const c = this.client;
    if (!c) throw new CloudOutageError('not connected');
    await c.publishAsync(topic, payload, { qos: 1 });
  }
}
