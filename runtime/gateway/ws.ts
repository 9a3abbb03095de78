/**
 * The WebSocket telemetry feed at /ws. A client sends
 *   {"op":"subscribe","topics":["model/*","channel/1001"]}   (and "unsubscribe", "ping")
 * and gets, for each matching topic, a snapshot first and then deltas, both as
 * `frame` writes them. The deltas come from the notifications themselves (they
 * carry what was written) through a token bucket per topic (./coalescer.ts): a
 * quiet topic's change goes out at once, a busy topic's changes merge to at most
 * one message per `intervalMs` after a burst of two:
 *   {"topic","ts","values":{name: number|null}, "quality"?: {...}, "times"?: {...}}
 * (a value per name; a quality only where it is not good, a timestamp only where
 * it is not the message's `ts`: at 10k points/s to 1,000 clients, a record
 * per value made four times the bytes). Fan-out uses
 * uWS topics (one publish per topic, not a loop over sockets). Memory stays
 * bounded per client: a client whose send buffer is over `maxBufferBytes`
 * gets no deltas until it drains, then a fresh snapshot of its topics (the
 * latest value wins); past `maxBackpressure` uWS closes it.
 */
import type uWS from 'uWebSockets.js';
import type { SiteJson } from '../domain/site.js';
import type { ValueRecord } from '../domain/telemetry.js';
import { KEYS } from '../redis/keys.js';
import type { Subscriptions } from '../redis/subscriptions.js';
import type { VoltageRedis } from '../redis/voltageRedis.js';
import type { Http } from './http.js';
import { TopicCoalescer } from './coalescer.js';
import { type ModelUpdateMessage, ValueCache, type ValueEntry } from './valueCache.js';
import { reportRejection, startAll } from '../reporter.js';

export interface FeedOptions {
  readonly intervalMs: number;
  readonly maxBufferBytes: number;
}

interface Client {
  topics: Set<string>;
  stale: boolean;
  caller: string;
}

/**
 * Topics served by someone else (the actor tree: `actor/{id}`), with their own
 * messages: the feed subscribes clients to them and sends their snapshot;
 * the source publishes on the app itself.
 */
export interface TopicSource {
  topics(): readonly string[];
  owns(topic: string): boolean;
  /** The whole message a new subscriber gets first. */
  snapshot(topic: string): Promise<string>;
}

type Values = Record<string, { value: number | null; ts: number | null; quality: string | null }>;

/** How c2m's model notifications begin after their time (lua/telemetry.lua): `{"ts":…,"src":"c2m",…`. */
const C2M_SOURCE = '"src":"c2m"';
/** The longest the snapshots sent to one client hold the thread before it lets other work through (sendSnapshots). */
const SNAPSHOT_SLICE_MS = 10;

/**
 * One feed message. `ts` is the newest timestamp of its values; `quality` names the
 * values that are not good (null: never written), `times` those whose timestamp
 * is not `ts`. Absent from both: good, at `ts`.
 */
export function frame(topic: string, values: Values, snapshot: boolean): string {
  let ts = 0;
  for (const k in values) {
    const t = values[k]!.ts;
    if (t !== null && t > ts) ts = t;
  }
  // Prototype-less: a value named like an Object method or "__proto__" is just a key.
  const out: Record<string, number | null> = Object.create(null) as Record<string, number | null>;
  let quality: Record<string, string | null> | undefined;
  let times: Record<string, number | null> | undefined;
  for (const k in values) {
    const v = values[k]!;
    out[k] = v.value;
    if (v.quality !== 'good') (quality ??= Object.create(null) as Record<string, string | null>)[k] = v.quality;
    if (v.ts !== ts) (times ??= Object.create(null) as Record<string, number | null>)[k] = v.ts;
  }
  return JSON.stringify({
    topic,
    ts: ts || Date.now(),
    ...(snapshot ? { snapshot: true } : {}),
    values: out,
    ...(quality ? { quality } : {}),
    ...(times ? { times } : {}),
  });
}

/**
 * A delta: what `frame` writes for the values of `entry` at the indices `changed`,
 * concatenated straight from the entry's arrays (no object per value, no second pass
 * of JSON.stringify: the feed's hot path).
 */
export function deltaFrame(topic: string, entry: ValueEntry, changed: readonly number[]): string {
  const { keys, value, ts: times, quality } = entry;
  let ts = 0;
  for (const i of changed) {
    const t = times[i]!;
    if (t > ts) ts = t;
  }
  let values = '';
  let qs = '';
  let ds = '';
  for (const i of changed) {
    const key = keys[i]!;
    const v = value[i]!;
    values += `${values === '' ? '' : ','}${key}${Number.isNaN(v) ? 'null' : v}`;
    const q = quality[i]!;
    if (q !== 'good') qs += `${qs === '' ? '' : ','}${key}${q === null ? 'null' : JSON.stringify(q)}`;
    const t = times[i]!;
    if (t !== ts) ds += `${ds === '' ? '' : ','}${key}${Number.isNaN(t) ? 'null' : t}`;
  }
  return `{"topic":${JSON.stringify(topic)},"ts":${ts || Date.now()},"values":{${values}}${qs === '' ? '' : `,"quality":{${qs}}`}${ds === '' ? '' : `,"times":{${ds}}`}}`;
}

/** `model/*`, `model/pv1`, `model/pv1/*`, `*` → a test for topic names. */
export function topicMatcher(pattern: string): (topic: string) => boolean {
  const base = pattern.endsWith('/*') ? pattern.slice(0, -2) : undefined;
  const re = new RegExp(
    `^${pattern
      .split('*')
      .map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
      .join('[^]*')}$`,
  );
  return (topic) => re.test(topic) || topic === base;
}

export class TelemetryFeed {
  private readonly clients = new Set<uWS.WebSocket<Client>>();
  private timer: NodeJS.Timeout | undefined;
  private unsubscribe: Array<() => Promise<void>> = [];
  /** The subscriber connection is shared and outlives the feed: its reconnect listener goes when the feed stops. */
  private removeReconnect: (() => void) | undefined;
  /** How often a client fell behind (it skipped deltas, then got a snapshot). */
  fellBehind = 0;
  /** Settles once the subscriptions are made and the caches loaded (start): clients' snapshots wait for it. */
  ready: Promise<void> = Promise.resolve();

  get clientCount(): number {
    return this.clients.size;
  }

  /** Clients behind now: they get no deltas until they drain. */
  get clientsBehind(): number {
    let n = 0;
    for (const ws of this.clients) if (ws.getUserData().stale) n += 1;
    return n;
  }

  private readonly allTopics: readonly string[];
  /** The models with calculations: their values that no channel feeds come in their own notifications. */
  private readonly site: SiteJson;
  /** Every model's values (also what GET /api/v1/models/{id} answers from). */
  readonly cache: ValueCache;
  /** Every channel's values, named `type:id`. */
  private readonly channels: ValueCache;
  /** What waits for a topic's token is its entry: the changes it keeps since the topic was last sent. */
  private readonly coalescer: TopicCoalescer<ValueEntry>;
  private readonly sources: TopicSource[] = [];

  constructor(
    private readonly http: Http,
    private readonly redis: VoltageRedis,
    private readonly subs: Subscriptions,
    private readonly opts: FeedOptions,
    site: SiteJson,
  ) {
    this.allTopics = [...site.models.map((m) => `model/${m.id}`), ...site.channels.map((c) => `channel/${c.id}`)];
    this.site = site;
    this.cache = new ValueCache(
      (id) => redis.telemetry.modelValues(id),
      site.models.map((m) => m.id),
    );
    this.channels = new ValueCache(
      (id) => this.readChannel(id),
      site.channels.map((c) => c.id),
    );
    // A quiet topic is sent at once; a busy one at most twice back to back, then once per interval (the latest of each value wins).
    this.coalescer = new TopicCoalescer<ValueEntry>(
      { intervalMs: opts.intervalMs, burst: 2 },
      // The entry keeps every change since the topic was last sent (the latest value of each).
      (into) => into,
      (topic, entry) => {
        const changed = entry.takeChanged();
        // A client that subscribes later gets a snapshot first.
        if (changed.length > 0 && this.http.app.numSubscribers(topic) > 0) this.http.app.publish(topic, deltaFrame(topic, entry, changed));
      },
    );
  }

  addSource(source: TopicSource): void {
    this.sources.push(source);
  }

  private async readChannel(id: string): Promise<Map<string, ValueRecord>> {
    const out = new Map<string, ValueRecord>();
    for (const t of ['m', 's', 'c', 'a'] as const) for (const [k, v] of await this.redis.telemetry.channelValues(id, t)) out.set(`${t}:${k}`, v);
    return out;
  }

  /** A topic's values now: from the caches once they are loaded, else from Redis. */
  private async snapshot(topic: string): Promise<Values> {
    const [kind, id] = topic.split('/') as [string, string];
    const cached = (kind === 'model' ? this.cache : this.channels).get(id);
    const rec = cached ?? (kind === 'model' ? await this.redis.telemetry.modelValues(id) : await this.readChannel(id));
    return Object.fromEntries(rec);
  }

  /**
   * Applies a notification to its entry; the change goes to the coalescer only for topics
   * someone listens to (the entry keeps what changed only then; the caches follow every change).
   */
  private offer(topic: string, entry: ValueEntry | undefined, apply: (e: ValueEntry) => void): void {
    if (!entry) return;
    entry.tracking = this.http.app.numSubscribers(topic) > 0;
    apply(entry);
    if (entry.tracking) this.coalescer.offer(topic, entry);
  }

  /** A channel notification: the channel's values and the model values they feed (as c2m wrote both). */
  private onChannelUpdate(ch: string, msg: string): void {
    const entry = this.channels.change(ch);
    if (!entry) return;
    const topic = `channel/${ch}`;
    entry.tracking = this.http.app.numSubscribers(topic) > 0;
    const { feeds } = entry;
    for (const f of feeds) {
      this.cache.change(f.id);
      f.entry.tracking = this.http.app.numSubscribers(`model/${f.id}`) > 0;
    }
    entry.applyChannel(msg);
    if (entry.tracking) this.coalescer.offer(topic, entry);
    for (const f of feeds) if (f.entry.tracking) this.coalescer.offer(`model/${f.id}`, f.entry);
  }

  /**
   * Links each channel point to the model value it feeds (mapping:c2m), and returns the models whose
   * notifications must be read: those with calculations, and those with a measurement no channel
   * feeds (a rule's `set`, or a value written by `model_set`), which no channel notification carries.
   */
  private async linkModels(): Promise<string[]> {
    const fed = new Set<string>();
    // In rounds: REST answers between them (the gateway listens already).
    for await (const round of this.redis.site.c2mMappingRounds()) {
      for (const [point, target] of round) {
        fed.add(target);
        const a = point.lastIndexOf(':', point.lastIndexOf(':') - 1);
        const sep = target.indexOf(':');
        const channel = this.channels.entry(point.slice(0, a));
        const model = this.cache.entry(target.slice(0, sep));
        if (channel && model && a > 0 && sep > 0) channel.link(point.slice(a + 1), target.slice(0, sep), model, target.slice(sep + 1));
      }
    }
    return this.site.models.filter((m) => m.calculations.length > 0 || m.measurements.some((v) => !fed.has(`${m.id}:${v.name}`))).map((m) => m.id);
  }

  /** Clients behind on their buffer skip deltas until they drain, then get a snapshot. */
  private checkBuffers(): void {
    for (const ws of this.clients) {
      const c = ws.getUserData();
      if (!c.stale && ws.getBufferedAmount() > this.opts.maxBufferBytes) {
        c.stale = true;
        this.fellBehind += 1;
        for (const t of c.topics) ws.unsubscribe(t);
      }
    }
  }

  /**
   * Registers the WebSocket route and starts reading: the subscriptions, then every model's and
   * channel's values into the caches. It returns at once, so that the gateway listens (REST answers
   * from Redis meanwhile) without waiting for a large site's values (100k points: ~2–3 s); clients'
   * snapshots wait for `ready`, which rejects if the reading failed (the gateway then fails).
   */
  start(): void {
    this.ready = this.subscribeAndLoad();
    // Handled here as well: the gateway awaits it after listening, and a failure before that is not unhandled.
    this.ready.catch(() => undefined);
  }

  private async subscribeAndLoad(): Promise<void> {
    // First: uWS has no topic tree before a WebSocket route exists (numSubscribers would crash).
    this.http.app.ws<Client>('/ws', {
      maxPayloadLength: 16 * 1024,
      idleTimeout: 120,
      sendPingsAutomatically: true,
      maxBackpressure: this.opts.maxBufferBytes * 4,
      closeOnBackpressureLimit: 1,
      upgrade: (res, req, context) => {
        const authorization = req.getHeader('authorization');
        const query = new URLSearchParams(req.getQuery() ?? '');
        const key = req.getHeader('sec-websocket-key');
        const protocol = req.getHeader('sec-websocket-protocol');
        const extensions = req.getHeader('sec-websocket-extensions');
        let caller: string;
        try {
          caller = this.http.authenticate(authorization, query.get('token')).name;
        } catch (e) {
          res.cork(() =>
            res
              .writeStatus('401 Unauthorized')
              .writeHeader('content-type', 'application/json')
              .end(JSON.stringify({ error: { code: 'UNAUTHORIZED', message: (e as Error).message } })),
          );
          return;
        }
        res.upgrade<Client>({ topics: new Set(), stale: false, caller }, key, protocol, extensions, context);
      },
      open: (ws) => {
        this.clients.add(ws);
      },
      close: (ws) => {
        this.clients.delete(ws);
      },
      drain: (ws) => {
        const c = ws.getUserData();
        if (!c.stale || ws.getBufferedAmount() > this.opts.maxBufferBytes / 2) return;
        c.stale = false;
        reportRejection(this.sendSnapshots(ws, [...c.topics]), { source: 'ws snapshot' });
      },
      message: (ws, data) => {
        reportRejection(this.onMessage(ws, Buffer.from(data).toString('utf8')), { source: 'ws message' });
      },
    });
    // What c2m writes to a model its channel's notification carries too (linkModels): model
    // notifications are read only for what no channel carries (calculated values, values set by
    // rules), so only those models are subscribed (Redis then sends this process one notification
    // per poll, not two).
    // The subscriptions leave together (one round trip, not one per topic: on a busy site each
    // one waited its turn behind the polls' writes, and a restarted gateway served seconds later).
    const subscribing: Array<Promise<() => Promise<void>>> = [];
    const modelsRead = await this.linkModels();
    for (const id of modelsRead) {
      subscribing.push(
        this.subs.on(KEYS.modelUpdate(id), (msg) => {
          if (msg.startsWith(C2M_SOURCE, msg.indexOf(',') + 1)) return;
          let m: ModelUpdateMessage;
          try {
            m = JSON.parse(msg) as ModelUpdateMessage;
          } catch {
            return;
          }
          this.offer(`model/${id}`, this.cache.change(id), (e) => e.applyModel(m));
        }),
      );
    }
    // Channel notifications carry the poll's time and its points: no read-back.
    // One subscription per channel rather than a pattern: with no pattern subscriber, c2m
    // builds no model notification that nobody receives (lua/telemetry.lua `listened`).
    for (const ch of this.channels.ids) subscribing.push(this.subs.on(KEYS.channelUpdate(ch), (msg) => this.onChannelUpdate(ch, msg)));
    this.unsubscribe.push(...(await startAll(subscribing, { source: 'unsubscribe' })));
    await this.cache.load();
    await this.channels.load();
    this.removeReconnect = this.subs.onReconnect(() => {
      reportRejection(
        this.cache.load().then(() => this.channels.load()),
        { source: 'ws reload after reconnect' },
      );
    });
    this.timer = setInterval(() => this.checkBuffers(), this.opts.intervalMs);
  }

  private async sendSnapshots(ws: uWS.WebSocket<Client>, topics: string[]): Promise<void> {
    // A snapshot from the caches, once loaded: one read from Redis while they load could miss a change made
    // between that read and the client's subscription to the topic (its entry was not tracking it then).
    await this.ready;
    let since = performance.now();
    for (const topic of topics) {
      const source = this.sources.find((s) => s.owns(topic));
      const text = source ? await source.snapshot(topic) : frame(topic, await this.snapshot(topic), true);
      if (!this.clients.has(ws)) return;
      ws.send(text);
      ws.subscribe(topic);
      // Made from the caches, every topic's frame is ready at once: the snapshots of a whole site (a client on
      // `model/*` and `channel/*`, or one back from behind) held the thread ~0.7 s, REST waiting. A turn of the
      // event loop every SNAPSHOT_SLICE_MS lets other requests through.
      if (performance.now() - since > SNAPSHOT_SLICE_MS) {
        await new Promise((r) => setImmediate(r));
        since = performance.now();
      }
    }
  }

  private async onMessage(ws: uWS.WebSocket<Client>, text: string): Promise<void> {
    const reply = (o: unknown) => {
      if (this.clients.has(ws)) ws.send(JSON.stringify(o));
    };
    let msg: { op?: unknown; topics?: unknown };
    try {
      msg = JSON.parse(text) as typeof msg;
    } catch {
      return reply({ error: { code: 'BAD_JSON', message: 'messages are JSON' } });
    }
    const c = ws.getUserData();
    if (msg.op === 'ping') return reply({ op: 'pong', ts: Date.now() });
    if ((msg.op !== 'subscribe' && msg.op !== 'unsubscribe') || !Array.isArray(msg.topics) || !msg.topics.every((t) => typeof t === 'string')) {
      return reply({ error: { code: 'BAD_REQUEST', message: 'send {"op":"subscribe"|"unsubscribe","topics":["model/*", …]} or {"op":"ping"}' } });
    }
    const patterns = msg.topics as string[];
    const matchers = patterns.map((p) => topicMatcher(p));
    const all = this.sources.length ? [...this.allTopics, ...this.sources.flatMap((s) => s.topics())] : this.allTopics;
    const matching = all.filter((t) => matchers.some((m) => m(t)));
    const unmatched = patterns.filter((_, i) => !all.some((t) => matchers[i]!(t)));
    if (msg.op === 'subscribe' && unmatched.length > 0) {
      reply({
        error: {
          code: 'NO_SUCH_TOPIC',
          message: `no topic matches ${unmatched.map((p) => `'${p}'`).join(', ')}; topics are model/{id}, channel/{id}, actor/{id}, alarm/all and rule/{id} of this site`,
        },
      });
      if (matching.length === 0) return;
    }
    if (msg.op === 'unsubscribe') {
      for (const t of matching) {
        c.topics.delete(t);
        ws.unsubscribe(t);
      }
      return reply({ op: 'unsubscribed', topics: matching });
    }
    const fresh = matching.filter((t) => !c.topics.has(t));
    for (const t of fresh) c.topics.add(t);
    reply({ op: 'subscribed', topics: matching });
    await this.sendSnapshots(ws, fresh);
  }

  async stop(): Promise<void> {
    // Subscriptions still being made would outlive the feed.
    await this.ready.catch(() => undefined);
    if (this.timer) clearInterval(this.timer);
    this.removeReconnect?.();
    this.coalescer.stop();
    for (const ws of this.clients) ws.end(1001, 'server going away');
    await Promise.all(this.unsubscribe.map((u) => u()));
  }
}
