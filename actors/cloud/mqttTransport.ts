/**
 * A cloud link's MQTT side (mqtt.js): connect with a Last Will, a retained
 * `online` birth message and the downlink subscriptions; publish at QoS 1
 * within a bounded in-flight window (below the broker's per-client queue,
 * beyond which mosquitto drops silently); a forced end on loss, so that the
 * publishes in flight fail at once and their entries stay pending (a graceful
 * stop waits for their PUBACKs first: CloudLink.close).
 */
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { isAbsolute, join } from 'node:path';
import { connect as mqttConnect, type IClientOptions, type MqttClient } from 'mqtt';
import type { MqttLinkConfig } from '../../runtime/config/cloud.js';
import { errorMessage } from '../../runtime/errors.js';
import type { Logger } from '../../runtime/logger.js';
import type { VoltageRedis } from '../../runtime/redis/voltageRedis.js';
import { report, settled } from '../../runtime/reporter.js';
import { CloudDownlink } from './downlink.js';
import { fillTopic, linkTopics } from './messages.js';
import { CloudOutageError, withTimeout, type Outgoing, type Refusal, type UplinkTransport } from './transport.js';
import { InflightWindow } from './window.js';
import { publishRun, type Publish, type RunAck } from './mqttBatch.js';
import { tapPubacks } from './pubackTap.js';

const CONNECT_TIMEOUT_MS = 5_000;

export interface LinkSite {
  readonly id: string;
  readonly dir: string;
}

/** A config file path: relative to the config folder unless absolute. */
export function siteFile(site: LinkSite, p: string): Buffer {
  return readFileSync(isAbsolute(p) ? p : join(site.dir, p));
}

export class MqttTransport implements UplinkTransport {
  readonly provenByDelivery = false;
  readonly splitsRefusals = false;
  readonly topics: ReturnType<typeof linkTopics>;
  private readonly downlink: CloudDownlink;
  private client: MqttClient | undefined;
  private window: InflightWindow;
  private readonly topicCache = new Map<string, { readonly topic: string; readonly topicBytes: Buffer }>();
  /** The data topic names the channel: a model's topic depends on the channel of its message. */
  private readonly dataByChannel: boolean;

  constructor(
    private readonly cfg: MqttLinkConfig,
    private readonly site: LinkSite,
    bus: VoltageRedis,
    private readonly log: Logger,
  ) {
    this.topics = linkTopics(cfg.prefix, site.id);
    this.downlink = new CloudDownlink(bus, { link: cfg.id, ...cfg.downlink }, this.topics, (t, p) => this.publishResult(t, p), log);
    this.window = new InflightWindow(cfg.inflight);
    this.dataByChannel = cfg.dataTopic.includes('{channel}');
  }

  async connect(): Promise<void> {
    this.dropClient();
    const client = mqttConnect(this.cfg.url, this.clientOptions());
    // Before the connection delivers a byte: plain PUBACKs are answered without mqtt.js's per-packet path.
    tapPubacks(client);
    this.client = client;
    this.window = new InflightWindow(this.cfg.inflight);
    try {
      await new Promise<void>((resolve, reject) => {
        client.once('connect', (connack) => {
          // MQTT 5: the broker's Receive Maximum bounds the QoS 1 publishes awaiting PUBACK (§3.3.4), below `inflight` if lower.
          const receiveMaximum = connack.properties?.receiveMaximum;
          // 0 is a protocol error (§3.2.2.3.3): a window of no slot would never let a publish out.
          if (receiveMaximum !== undefined && receiveMaximum < 1) return reject(new Error(`the broker sent Receive Maximum ${receiveMaximum}`));
          if (receiveMaximum !== undefined && receiveMaximum < this.cfg.inflight) this.window = new InflightWindow(receiveMaximum);
          resolve();
        });
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
  }

  watch(lost: (why: string) => void): () => void {
    const client = this.client;
    if (!client) {
      queueMicrotask(() => lost('not connected'));
      return () => undefined;
    }
    client.on('close', () => lost('the connection to the broker closed'));
    client.on('error', (e) => lost(errorMessage(e)));
    client.on('message', (topic, payload) => {
      void this.downlink.handle(topic, payload.toString());
    });
    return () => client.removeAllListeners('message');
  }

  async deliver(batch: readonly Outgoing[], lost: () => boolean): Promise<{ readonly acked: Promise<readonly Refusal[]> }> {
    const client = this.client;
    if (!client) throw new CloudOutageError('not connected');
    const window = this.window;
    // One promise for the batch (not one per message): resolved by the last answer, rejected by the first failure.
    let left = batch.length;
    let failed = false;
    const refusals: Refusal[] = [];
    let settle!: (e?: Error) => void;
    const acked = new Promise<readonly Refusal[]>((resolve, reject) => {
      settle = (e) => (e ? reject(e) : resolve(refusals.sort((a, b) => a.index - b.index)));
    });
    // Handed out, it is the caller's; when deliver throws first (the connection lost while publishing, a run that
    // could not be encoded), nobody awaits it: a failure of the runs already out, other than the one thrown, is reported.
    let returned = false;
    let thrown: unknown;
    acked.catch((e: unknown) => {
      if (!returned && e !== thrown) report(e, { source: 'cloud link: acknowledgement of a batch that failed to publish', link: this.cfg.id });
    });
    if (left === 0) settle();
    // Each message's packet id (a run in one write): a refusing PUBACK names its message by it.
    const ids: number[] = new Array(batch.length);
    let handedOut = 0;
    const onAck: RunAck = (err, packet, index) => {
      window.release();
      if (failed) return;
      // mqtt.js passes a refusing PUBACK (MQTT 5 reason code >= 0x80) as an error *and* the packet: the code decides.
      const p = packet as { reasonCode?: number; messageId?: number } | undefined;
      const code = p?.reasonCode ?? 0;
      if (code >= 0x80) {
        // The broker's answer about this message alone: the batch goes on (CloudLink parks and counts it).
        const at = index ?? ids.lastIndexOf(p?.messageId ?? -1, handedOut - 1);
        const m = batch[at];
        refusals.push({ index: at, topic: m ? this.publishOf(m).topic : '', payload: m?.payload ?? '', reasonCode: code });
      } else if (err) {
        failed = true;
        return settle(new CloudOutageError(errorMessage(err)));
      }
      if (--left === 0) settle();
    };
    // Runs of free slots, each published in one write (a run after a full window waits for a quantum, so
    // that PUBACKs arriving one by one do not make one write each).
    const quantum = Math.max(1, Math.floor(window.size / 8));
    for (let i = 0; i < batch.length; ) {
      let n = window.take(batch.length - i);
      if (n === 0) {
        await window.whenFree(Math.min(batch.length - i, quantum));
        n = window.take(batch.length - i);
      }
      if (lost() || this.client !== client) {
        window.release(n);
        throw new CloudOutageError('the connection was lost while publishing');
      }
      try {
        const run: Publish[] = new Array(n);
        for (let k = 0; k < n; k++) run[k] = this.publishOf(batch[i + k]!);
        handedOut = i + n;
        publishRun(client, run, onAck, ids, i);
      } catch (e) {
        // Nothing of the run is out (publishRun registers a run only once it is encoded; mqtt.js's publish, its
        // fallback, reports through the callbacks): its slots are free again, or the window would stay that much
        // smaller for as long as the connection lasts. The runs before it are the batch's, which fails.
        window.release(n);
        failed = true;
        const err = e instanceof Error ? e : new Error(String(e));
        thrown = err;
        settle(err);
        throw err;
      }
      i += n;
    }
    returned = true;
    return { acked };
  }

  /** A message with its topic (and the topic's bytes), filled once per model (and channel, when the template names it). */
  private publishOf(m: Outgoing): Publish {
    if (m.topic !== undefined) return { topic: m.topic, topicBytes: Buffer.from(m.topic), payload: m.payload };
    const key =
      m.kind === 'alarm'
        ? '\na'
        : m.kind === 'notify'
          ? '\nn'
          : m.kind === 'channel'
            ? `\nc${m.channel}`
            : this.dataByChannel
              ? `${m.model}\n${m.channel}`
              : m.model;
    let t = this.topicCache.get(key);
    if (t === undefined) {
      const vars = { site: this.site.id, prefix: this.topics.prefix, model: m.model, channel: m.channel };
      const topic =
        m.kind === 'alarm'
          ? this.topics.alarm
          : m.kind === 'notify'
            ? this.topics.notify
            : fillTopic(m.kind === 'channel' ? this.cfg.channelTopic : this.cfg.dataTopic, vars);
      t = { topic, topicBytes: Buffer.from(topic) };
      if (this.topicCache.size < 100_000) this.topicCache.set(key, t);
    }
    return { topic: t.topic, topicBytes: t.topicBytes, payload: m.payload };
  }

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
            ca: c.tls.ca ? siteFile(this.site, c.tls.ca) : undefined,
            cert: c.tls.cert ? siteFile(this.site, c.tls.cert) : undefined,
            key: c.tls.key ? siteFile(this.site, c.tls.key) : undefined,
            rejectUnauthorized: c.tls.rejectUnauthorized,
          }
        : {}),
    };
  }

  private async publishResult(topic: string, payload: string): Promise<void> {
    const c = this.client;
    if (!c) throw new CloudOutageError('not connected');
    await c.publishAsync(topic, payload, { qos: 1 });
  }
}
