/**
 * The WebSocket telemetry feed at /ws. A client sends
 *   {"op":"subscribe","topics":["model/*","channel/1001"]}   (and "unsubscribe", "ping")
 * and gets, for each matching topic, a snapshot first and then deltas
 * coalesced per topic over `intervalMs`, both as `frame` writes them:
 *   {"topic","ts","values":{name: number|null}, "quality"?: {...}, "times"?: {...}}
 * (a value per name; a quality only where it is not good, a timestamp only where
 * it is not the message's `ts`: at 10k points/s to 1,000 clients, a record
 * per value made four times the bytes). Fan-out uses
 * uWS topics (one publish per topic, not a loop over sockets). Memory stays
 * bounded per client: a client whose send buffer is over `maxBufferBytes`
 * gets no deltas until it drains, then a fresh snapshot of its topics (the
 * latest value wins); past `maxBackpressure` uWS closes it.
 */
import uWS from 'uWebSockets.js';
import type { SiteJson, Subscriptions, VoltageRedis, ValueRecord } from '../redis/functions.js';
import type { Http } from './http.js';
import { ModelCache, type ModelUpdateMessage } from './modelCache.js';

export interface FeedOptions { readonly intervalMs: number; readonly maxBufferBytes: number }

interface Client { topics: Set<string>; stale: boolean; caller: string }

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
  return JSON.stringify({ topic, ts: ts || Date.now(), ...(snapshot ? { snapshot: true } : {}), values: out, ...(quality ? { quality } : {}), ...(times ? { times } : {}) });
}

/** `model/*`, `model/pv1`, `model/pv1/*`, `*` → a test for topic names. */
export function topicMatcher(pattern: string): (topic: string) => boolean {
  const base = pattern.endsWith('/*') ? pattern.slice(0, -2) : undefined;
  const re = new RegExp(`^${pattern.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('[^]*')}$`);
  return (topic) => re.test(topic) || topic === base;
}

export class TelemetryFeed {
  private readonly pending = new Map<string, Values>();
  private readonly clients = new Set<uWS.WebSocket<Client>>();
  private timer: NodeJS.Timeout | undefined;
  private unsubscribe: Array<() => Promise<void>> = [];
  /** How often a client fell behind (it skipped deltas, then got a snapshot). */
  fellBehind = 0;

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
  private readonly sources: TopicSource[] = [];
  readonly cache: ModelCache;

  constructor(private readonly http: Http, private readonly redis: VoltageRedis, private readonly subs: Subscriptions, private readonly opts: FeedOptions, site: SiteJson) {
    this.allTopics = [...site.models.map((m) => `model/${m.id}`), ...site.channels.map((c) => `channel/${c.id}`)];
    this.cache = new ModelCache(redis, site.models.map((m) => m.id));
  }

  addSource(source: TopicSource): void {
    this.sources.push(source);
  }

  private async snapshot(topic: string): Promise<Values> {
    const [kind, id] = topic.split('/') as [string, string];
    const out: Values = {};
    const put = (prefix: string, rec: Map<string, ValueRecord>) => { for (const [k, v] of rec) out[prefix + k] = v; };
    if (kind === 'model') put('', await this.redis.modelValues(id));
    else for (const t of ['m', 's', 'c', 'a'] as const) put(`${t}:`, await this.redis.channelValues(id, t));
    return out;
  }

  /** Coalesced until the next flush: the latest of each value wins. */
  private queue(topic: string, values: Values): void {
    const p = this.pending.get(topic);
    if (p) Object.assign(p, values);
    else this.pending.set(topic, values);
  }

  private flush(): void {
    if (this.pending.size === 0) return;
    // Clients behind on their buffer skip deltas until they drain, then get a snapshot.
    for (const ws of this.clients) {
      const c = ws.getUserData();
      if (!c.stale && ws.getBufferedAmount() > this.opts.maxBufferBytes) {
        c.stale = true;
        this.fellBehind += 1;
        for (const t of c.topics) ws.unsubscribe(t);
      }
    }
    for (const [topic, p] of this.pending) {
      if (this.http.app.numSubscribers(topic) === 0) continue; // a client that subscribes later gets a snapshot first
      this.http.app.publish(topic, frame(topic, p, false));
    }
    this.pending.clear();
  }

  async start(): Promise<void> {
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
          res.cork(() => res.writeStatus('401 Unauthorized').writeHeader('content-type', 'application/json')
            .end(JSON.stringify({ error: { code: 'UNAUTHORIZED', message: (e as Error).message } })));
          return;
        }
        res.upgrade<Client>({ topics: new Set(), stale: false, caller }, key, protocol, extensions, context);
      },
      open: (ws) => { this.clients.add(ws); },
      close: (ws) => { this.clients.delete(ws); },
      drain: (ws) => {
        const c = ws.getUserData();
        if (!c.stale || ws.getBufferedAmount() > this.opts.maxBufferBytes / 2) return;
        c.stale = false;
        void this.sendSnapshots(ws, [...c.topics]);
      },
      message: (ws, data) => { void this.onMessage(ws, Buffer.from(data).toString('utf8')); },
    });
    this.unsubscribe.push(await this.subs.onPattern('modsrv:*:update', (msg, channel) => {
      const model = channel.slice('modsrv:'.length, -':update'.length);
      let m: ModelUpdateMessage;
      try { m = JSON.parse(msg) as ModelUpdateMessage; } catch { return; }
      const changed = this.cache.apply(model, m);
      if (changed && this.http.app.numSubscribers(`model/${model}`) > 0) this.queue(`model/${model}`, changed);
    }));
    // Channel notifications carry only the time: the channel's values are read at most once per interval.
    const dirtyChannels = new Set<string>();
    this.unsubscribe.push(await this.subs.onPattern('comsrv:*:update', (_msg, channel) => {
      dirtyChannels.add(channel.slice('comsrv:'.length, -':update'.length));
    }));
    await this.cache.load();
    this.subs.onReconnect(() => { void this.cache.load().catch(() => undefined); });
    this.timer = setInterval(() => {
      const chans = [...dirtyChannels];
      dirtyChannels.clear();
      void Promise.all(chans.map(async (ch) => {
        if (this.http.app.numSubscribers(`channel/${ch}`) === 0) return;
        this.queue(`channel/${ch}`, await this.snapshot(`channel/${ch}`));
      })).catch(() => undefined).finally(() => this.flush());
    }, this.opts.intervalMs);
  }

  private async sendSnapshots(ws: uWS.WebSocket<Client>, topics: string[]): Promise<void> {
    for (const topic of topics) {
      const source = this.sources.find((s) => s.owns(topic));
      const text = source ? await source.snapshot(topic) : frame(topic, await this.snapshot(topic), true);
      if (!this.clients.has(ws)) return;
      ws.send(text);
      ws.subscribe(topic);
    }
  }

  private async onMessage(ws: uWS.WebSocket<Client>, text: string): Promise<void> {
    const reply = (o: unknown) => { if (this.clients.has(ws)) ws.send(JSON.stringify(o)); };
    let msg: { op?: unknown; topics?: unknown };
    try { msg = JSON.parse(text) as typeof msg; } catch { return reply({ error: { code: 'BAD_JSON', message: 'messages are JSON' } }); }
    const c = ws.getUserData();
    if (msg.op === 'ping') return reply({ op: 'pong', ts: Date.now() });
    if ((msg.op !== 'subscribe' && msg.op !== 'unsubscribe') || !Array.isArray(msg.topics) || !msg.topics.every((t) => typeof t === 'string')) {
      return reply({ error: { code: 'BAD_REQUEST', message: 'send {"op":"subscribe"|"unsubscribe","topics":["model/*", …]} or {"op":"ping"}' } });
    }
    const all = this.sources.length ? [...this.allTopics, ...this.sources.flatMap((s) => s.topics())] : this.allTopics;
    const matching = all.filter((t) => (msg.topics as string[]).some((p) => topicMatcher(p)(t)));
    if (msg.op === 'unsubscribe') {
      for (const t of matching) { c.topics.delete(t); ws.unsubscribe(t); }
      return reply({ op: 'unsubscribed', topics: matching });
    }
    const fresh = matching.filter((t) => !c.topics.has(t));
    for (const t of fresh) c.topics.add(t);
    reply({ op: 'subscribed', topics: matching });
    await this.sendSnapshots(ws, fresh);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    for (const ws of this.clients) ws.end(1001, 'server going away');
    await Promise.all(this.unsubscribe.map((u) => u()));
  }
}
