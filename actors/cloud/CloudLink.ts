/**
 * Binds one cloud link to Redis and its cloud (an UplinkTransport: MQTT or
 * HTTP): the outbox read through the link's own consumer group, messages
 * built per model and per alarm transition (messages.ts), delivered in order,
 * and an entry XACKed only once the cloud acknowledged every message built
 * from it (MQTT: each PUBACK; HTTP: a 2xx answer to the batch).
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
 * by maxBacklogMB (estimated from the outbox's mean entry size). Past it:
 * - `overflow: drop-oldest`: the oldest unsent entries are acknowledged unsent
 *   by a second consumer of the group and counted (`cloud:{link}:stats`
 *   dropped, a warning log);
 * - `overflow: refuse-new`: the link keeps what it holds and takes no new
 *   entry until its kept backlog is below the bound again. The outbox is one
 *   stream shared with the other consumers, so c2m still appends: the link
 *   records the range of stream ids it refused (`cloud:{link}:refusing`,
 *   opened at the stream's last id when the bound is passed, closed when the
 *   kept backlog is under it, checked every second), counts the entries
 *   appended in it (`notTaken`, exact, from the stream's entries-added), and
 *   acknowledges them unsent when its cursor reaches them. Their memory is
 *   freed only then: while a link refuses, the outbox's own bound
 *   (runtime.redis.outboxMaxMB) is what bounds memory.
 * The outbox's own bound drops and counts too (c2m).
 *
 * It never delivers an entry out of order and never acknowledges one that
 * the cloud has not answered. A message the broker refuses on its own (MQTT 5
 * reason code ≥ 0x80) does not hold back the rest: it is parked and counted
 * with its entry's XACK (refusals.ts), and sent again only when an operator
 * asks, in slices between the batches (resend.ts).
 */
import type { CloudLinkConfig } from '../../runtime/config/cloud.js';
import { errorMessage } from '../../runtime/errors.js';
import type { Logger } from '../../runtime/logger.js';
import { groupBacklog } from '../../runtime/domain/telemetry.js';
import type { RefusedRange } from '../../runtime/redis/cloud.js';
import { KEYS } from '../../runtime/redis/keys.js';
import type { VoltageRedis } from '../../runtime/redis/voltageRedis.js';
import { EMPTY_STATS, type UplinkEvent, type UplinkStats } from '../../machines/cloudMachine.js';
import { OutboxFormatError } from '../history/outbox.js';
import { compareIds, OutboxConsumer, type ModelValueTarget, type StreamEntries } from '../outbox/consumer.js';
import { HttpTransport } from './httpTransport.js';
import { LinkState } from './linkState.js';
import {
  alarmPayload,
  entryMessages,
  messagePayload,
  notifyPayload,
  planSeqs,
  snapshotMessages,
  type BuildOptions,
  type EntrySeqs,
  type UplinkMessage,
} from './messages.js';
import { MqttTransport, type LinkSite } from './mqttTransport.js';
import { parked, RefusalLog } from './refusals.js';
import { ParkedResend } from './resend.js';
import { CloudOutageError, CloudRefusedError, withTimeout, type Outgoing, type Refusal, type UplinkTransport } from './transport.js';
import { awaitedLater, settled } from '../../runtime/reporter.js';

export { CloudOutageError } from './transport.js';
export type { RefusedRange } from '../../runtime/redis/cloud.js';

const READ_BLOCK_MS = 500;
const MAPPING_REFRESH_MS = 60_000;
/** The most entries the backlog bound drops at once. */
const TRIM_MAX = 10_000;
/** publish: interval, nothing new in the outbox: the interval closes by the clock this long after its end (a poll's entry lags its time). */
const INTERVAL_GRACE_MS = 100;
/** How long a reconnect waits for the last batch's acknowledgement to settle (it fails at once when its connection is ended). */
const SETTLE_WAIT_MS = 2_000;

export type CloudSite = LinkSite;

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** What a batch's XACK needs once the cloud acknowledged it. */
interface BatchAck {
  /** Every entry of the batch (built and empty). */
  readonly ids: readonly string[];
  readonly lastId: string;
  /** The entries with messages (their seqs in cloud:{link}:inflight). */
  readonly built: readonly string[];
  readonly seqs: readonly EntrySeqs[];
  readonly published: number;
  readonly resent: number;
  readonly changes: readonly string[];
}

export function refusedBy(ranges: readonly RefusedRange[], id: string): boolean {
  return ranges.some((r) => compareIds(id, r.from) > 0 && (r.to === undefined || compareIds(id, r.to) <= 0));
}

export function transportOf(cfg: CloudLinkConfig, site: CloudSite, bus: VoltageRedis, log: Logger): UplinkTransport {
  return cfg.type === 'http' ? new HttpTransport(cfg, site.id, log) : new MqttTransport(cfg, site, bus, log);
}

export class CloudLink {
  readonly group: string;
  private readonly outbox: OutboxConsumer;
  private readonly trimmer: OutboxConsumer;
  private readonly transport: UplinkTransport;
  private mapping = new Map<string, ModelValueTarget>();
  private mappingReadAt = 0;
  private lastSeq = 0;
  private ranges: RefusedRange[] = [];
  private readonly stats: Mutable<UplinkStats> = { ...EMPTY_STATS };
  private readonly models: ReadonlySet<string> | undefined;
  private readonly channels: ReadonlySet<string> | undefined;
  /** The deadband's references (on-change) or the latest values and interval (interval); cloud:{link}:last. */
  private readonly state = new LinkState();
  /** on-change with a deadband, or interval: the state is kept (else cloud:{link}:last is dropped). */
  private readonly keepsState: boolean;
  private readonly refusalLog: RefusalLog;
  /** Requests to send the parked messages again, handled between batches. */
  private readonly resend: ParkedResend;
  /** The uplink's loop on the current connection (`close` waits for it). */
  private pumping: Promise<void> | undefined;
  /** The acknowledgement of the last batch out: a reconnect waits for it before it reads the state back. */
  private outstanding: Promise<void> | undefined;

  private readonly redis: VoltageRedis;
  /** The connection the XACKs of delivered batches go on (the reading one blocks in XREADGROUP). */
  private readonly ackRedis: VoltageRedis;

  constructor(
    connections: { readonly read: VoltageRedis; readonly ack: VoltageRedis },
    private readonly bus: VoltageRedis,
    readonly cfg: CloudLinkConfig,
    site: CloudSite,
    private readonly log: Logger,
    transport?: UplinkTransport,
  ) {
    this.redis = connections.read;
    this.ackRedis = connections.ack;
    this.group = KEYS.cloudGroup(cfg.id);
    this.outbox = new OutboxConsumer(this.redis, KEYS.outbox, this.group, 'link');
    this.trimmer = new OutboxConsumer(this.redis, KEYS.outbox, this.group, 'bound');
    this.models = cfg.models ? new Set(cfg.models) : undefined;
    this.channels = cfg.channels ? new Set(cfg.channels) : undefined;
    this.keepsState = cfg.publish === 'interval' || cfg.deadband !== undefined;
    this.transport = transport ?? transportOf(cfg, site, bus, log);
    this.refusalLog = new RefusalLog(log);
    this.resend = new ParkedResend(this.redis, this.ackRedis, cfg.id, this.transport, this.refusalLog, log);
  }

  /**
   * The consumer group exists, so that c2m writes the outbox from now on, even
   * while the cloud is unreachable (the backlog is what store-and-forward
   * keeps); the ranges a refuse-new link refused are read back.
   */
  async ensureGroup(): Promise<void> {
    await this.outbox.ensureGroup();
    this.ranges = await this.redis.cloud.refusedRanges(this.cfg.id);
  }

  /**
   * Connects (MQTT: birth message, subscriptions). A transport without a
   * session (HTTP) proves itself by delivering: pending entries first, so the
   * link is online only once the cloud took a batch (and the backoff grows
   * while it refuses).
   */
  async connect(): Promise<void> {
    await this.outbox.ensureGroup();
    await this.readMapping();
    try {
      this.lastSeq = await this.redis.cloud.lastSeq(this.cfg.id);
    } catch (e) {
      throw new CloudOutageError(`Redis: ${errorMessage(e)}`);
    }
    // After the transport's connect: it ended the old connection, so the last batch's acknowledgement has settled or fails now.
    await this.transport.connect();
    await this.loadState();
    await this.sendRecordedSnapshot();
    if (this.transport.provenByDelivery) {
      const resend = this.outbox.pendingMayExist;
      const entries = await this.outbox.next(this.cfg.batchEntries);
      if (entries.length > 0) await (await this.dispatch(entries, () => false, resend)).done;
    }
    this.log.info({ url: this.cfg.url, seq: this.lastSeq }, 'cloud link online');
  }

  /**
   * Runs the uplink on the open connection until it is lost (reported once with LOST); returns its stop, after
   * which it reads nothing more but finishes handing out what it read (`close` waits for that, bounded).
   */
  uplink(sendBack: (e: UplinkEvent) => void): () => void {
    let gone = false;
    let stopping = false;
    const lost = (why: string) => {
      if (gone) return;
      gone = true;
      if (!stopping) sendBack({ type: 'LOST', error: why });
    };
    const unwatch = this.transport.watch(lost);
    this.pumping = this.pump(
      () => gone || stopping,
      () => gone,
    ).catch((e: unknown) => lost(errorMessage(e)));
    return () => {
      stopping = true;
      unwatch();
    };
  }

  /** The counters, the backlog measured and bounded (called every second, online or not). */
  async monitor(): Promise<UplinkStats> {
    const q = await this.bus.telemetry.outboxStats();
    const g = q.groups.find((x) => x.name === this.group);
    if (!g) return { ...this.stats };
    const backlog = groupBacklog(g);
    const meanBytes = q.length > 0 ? q.bytes / q.length : 0;
    const bound = this.cfg.maxBacklogMB * 2 ** 20;
    let refusing = 0;
    if (this.cfg.overflow === 'refuse-new') refusing = await this.refuseNew(backlog, meanBytes, bound);
    else {
      const excess = Math.ceil((backlog * meanBytes - bound) / Math.max(1, meanBytes));
      if (meanBytes > 0 && excess > 0 && g.lag) await this.trim(Math.min(excess, g.lag, TRIM_MAX));
    }
    const stats = await this.redis.cloud.counters(this.cfg.id);
    this.stats.dropped = stats.dropped;
    this.stats.refused = stats.refused;
    this.stats.lastRefusal = stats.lastRefusal;
    this.stats.notTaken = stats.notTaken + refusing;
    this.stats.lag = backlog;
    return { ...this.stats };
  }

  /**
   * A graceful stop: the batches out are answered by the cloud and acknowledged before the goodbye (bounded by
   * SETTLE_WAIT_MS; a cloud that is gone fails them at once), so that nothing the cloud took is left pending
   * and sent again after the restart. Then the transport says goodbye (MQTT: the retained offline status).
   */
  async close(): Promise<void> {
    const deadline = Date.now() + SETTLE_WAIT_MS;
    const within = (what: string, p: Promise<unknown> | undefined) =>
      p
        ? withTimeout(
            Math.max(1, deadline - Date.now()),
            what,
            p.then(() => undefined),
          ).catch((e: unknown) =>
            // Not a failure of the stop: what is left pending is sent again, first, at the next start.
            this.log.warn({ err: e, waitedMs: SETTLE_WAIT_MS }, 'cloud link: stopping without waiting further; what is still out stays pending'),
          )
        : undefined;
    await within('the uplink did not stop', this.pumping);
    await within('the last batch was not acknowledged', this.outstanding);
    await within('the last slice of a resend was not acknowledged', this.resend.idle());
    await this.transport.close();
  }

  /**
   * The state as of the last acknowledged entry (what the pending entries are
   * built again from), once the last batch's acknowledgement has settled. A
   * state kept for another publish mode, or by a link that keeps none, is
   * dropped (a stale reference would hold back a value the cloud never had).
   */
  private async loadState(): Promise<void> {
    if (this.outstanding) {
      // A failed acknowledgement is settled too (its entries stay pending); one still running after the
      // wait would write references newer than those loaded here: the connect is tried again later.
      const settled = this.outstanding.then(
        () => undefined,
        () => undefined,
      );
      await withTimeout(SETTLE_WAIT_MS, "the last batch's acknowledgement did not settle", settled).catch((e: unknown) => {
        throw new CloudOutageError(errorMessage(e));
      });
    }
    this.outstanding = undefined;
    try {
      const hash = this.keepsState ? await this.redis.cloud.state(this.cfg.id, this.cfg.publish) : undefined;
      if (!hash) {
        await this.redis.cloud.resetState(this.cfg.id, this.keepsState ? this.cfg.publish : undefined);
        this.state.load({});
      } else this.state.load(hash);
    } catch (e) {
      throw new CloudOutageError(`Redis: ${errorMessage(e)}`);
    }
  }

  /** publish: interval: a snapshot closed by the clock and not yet acknowledged is sent again first, with its seqs. */
  private async sendRecordedSnapshot(): Promise<void> {
    if (this.cfg.publish !== 'interval') return;
    try {
      const rec = await this.redis.cloud.recordedSnapshot(this.cfg.id);
      if (!rec) return;
      const out = JSON.parse(rec) as Outgoing[];
      await this.snapshotAcked(await (await this.transport.deliver(out, () => false)).acked);
      this.stats.resent += out.length;
    } catch (e) {
      throw e instanceof CloudOutageError ? e : new CloudOutageError(`Redis: ${errorMessage(e)}`);
    }
  }

  /**
   * publish: interval, the outbox read to its end: the interval closes by the
   * clock. Its snapshot is recorded (messages, seqs, the next interval) in
   * one MULTI before it is sent, and forgotten once acknowledged.
   */
  private async snapshotByClock(lost: () => boolean): Promise<void> {
    const ms = this.cfg.intervalMs!;
    const end = this.state.bucketEnd;
    const msgs = snapshotMessages(this.state, end, this.cfg.include.quality);
    this.state.bucketEnd = (Math.floor(Date.now() / ms) + 1) * ms;
    const out = msgs.map((m, i) => this.outgoing(this.lastSeq + 1 + i, { kind: 'data', m }));
    await this.ackRedis.cloud.recordSnapshot(
      this.cfg.id,
      this.state.takeChanges(),
      out.length > 0 ? { lastSeq: this.lastSeq + out.length, messages: JSON.stringify(out) } : undefined,
    );
    if (out.length === 0) return;
    this.lastSeq += out.length;
    this.stats.published += out.length - (await this.snapshotAcked(await (await this.transport.deliver(out, lost)).acked));
    this.stats.seq = Math.max(this.stats.seq, this.lastSeq);
  }

  /** A recorded snapshot answered: forgotten, with what the broker refused of it parked; returns how many were. */
  private async snapshotAcked(refusals: readonly Refusal[]): Promise<number> {
    await this.ackRedis.cloud.snapshotAcked(this.cfg.id, parked(refusals));
    this.refusalLog.note(refusals);
    return refusals.length;
  }

  private async readMapping(): Promise<void> {
    this.mapping = await this.outbox.readMapping();
    this.mappingReadAt = Date.now();
  }

  /**
   * Reads, delivers and acknowledges batch after batch, pending ones first;
   * paced while draining. New entries are pipelined: the next batch is read
   * and published while the previous one awaits its acknowledgements (at most
   * two batches outstanding; the wire order is the stream's, and a batch is
   * XACKed only after the one before it). Pending entries are not: their
   * reads start from the pending list's head, so each waits for its XACK.
   */
  private async pump(stopped: () => boolean, lost: () => boolean): Promise<void> {
    let drainStartedAt = 0;
    let drained = 0;
    let previous: Promise<void> | undefined;
    while (!stopped()) {
      if (Date.now() - this.mappingReadAt > MAPPING_REFRESH_MS) await this.readMapping();
      const resend = this.outbox.pendingMayExist;
      const end = this.cfg.publish === 'interval' ? this.state.bucketEnd : 0;
      const blockMs = end > 0 ? Math.min(READ_BLOCK_MS, Math.max(1, end + INTERVAL_GRACE_MS - Date.now())) : READ_BLOCK_MS;
      // While parked messages are being sent again, the read does not wait: the resend goes on when the outbox is quiet.
      const entries = await this.outbox.next(this.cfg.batchEntries, this.resend.readWaitMs(blockMs));
      // What was read stays pending, sent again first after the reconnect; a graceful stop hands it out first.
      if (lost()) return;
      if (entries.length === 0) {
        await this.resendStep(stopped, lost);
        // Nothing new: the batch still out must not hide a refusal.
        if (previous) await previous;
        previous = undefined;
        if (end > 0 && Date.now() >= end + INTERVAL_GRACE_MS && !stopped()) await this.snapshotByClock(lost);
        continue;
      }
      const { done } = await this.dispatch(entries, lost, resend, previous);
      this.outstanding = awaitedLater(done); // awaited below or at the next batch
      await this.resendStep(stopped, lost);
      if (previous) await previous;
      previous = done;
      if (resend) {
        await done;
        previous = undefined;
      }
      if (entries.length < this.cfg.batchEntries || stopped()) {
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

  /**
   * Between batches, once the live one is on its way (a slice that fails or is slow never holds it back): at most
   * one slice of a resend of parked messages (resend.ts), out of order by design.
   */
  private async resendStep(stopped: () => boolean, lost: () => boolean): Promise<void> {
    if (!stopped() && this.resend.due()) await this.resend.step(lost);
  }

  /**
   * Builds a batch and hands it to the transport; resolves once it is on its way, with `done`:
   * acknowledged by the cloud, then XACKed, never before the batch out before it (`previous`): a
   * refused batch leaves the ones after it pending too, with the deadband references they were built on.
   */
  private async dispatch(entries: StreamEntries, lost: () => boolean, resend: boolean, previous?: Promise<void>): Promise<{ readonly done: Promise<void> }> {
    const cfg = this.cfg;
    const opts: BuildOptions & Parameters<typeof entryMessages>[1] = {
      mapping: this.mapping,
      models: this.models,
      channels: this.channels,
      quality: cfg.include.quality,
      timestamps: cfg.include.timestamps,
      alarms: cfg.alarms,
      deadband: cfg.publish === 'on-change' && cfg.deadband ? { state: this.state, config: cfg.deadband } : undefined,
      interval: cfg.publish === 'interval' ? { ms: cfg.intervalMs!, state: this.state } : undefined,
    };
    const built: Array<{ id: string; msgs: UplinkMessage[] }> = [];
    const empty: string[] = [];
    for (const [id, fields] of entries) {
      // An entry the outbox's bound trimmed comes back from the pending list with no fields (c2m counted it);
      // one a refuse-new link refused was counted when it was refused.
      if (!fields || fields.length === 0 || (this.ranges.length > 0 && refusedBy(this.ranges, id))) {
        empty.push(id);
        continue;
      }
      try {
        const msgs = entryMessages(fields, opts);
        if (msgs.length > 0) built.push({ id, msgs });
        else empty.push(id);
      } catch (e) {
        if (!(e instanceof OutboxFormatError)) throw e;
        empty.push(id);
        this.log.warn({ entry: id, err: e }, 'cloud: skipped an outbox entry that is not in the outbox format');
      }
    }
    const changes = this.state.takeChanges();
    const seqs = await this.seqsOf(built, resend);
    const out: Outgoing[] = [];
    let resent = 0;
    for (let i = 0; i < built.length; i++) {
      const { msgs } = built[i]!;
      const { first, count, again } = seqs[i]!;
      // A resend after the mapping changed: the seqs it had are kept, a message more has none and is left out.
      for (let k = 0; k < Math.min(count, msgs.length); k++) {
        out.push(this.outgoing(first + k, msgs[k]!));
        if (again) resent += 1;
      }
    }
    const refused = async (e: unknown): Promise<never> => {
      if (e instanceof CloudRefusedError) await settled(this.redis.cloud.countRefused(this.cfg.id), { source: 'cloud refused count', link: this.cfg.id });
      throw e;
    };
    const { acked } = await this.transport.deliver(out, lost).catch(refused);
    // What the acknowledgement needs, and nothing more: the batch's entries and messages are garbage once
    // handed out, instead of surviving (and being promoted) until the PUBACKs.
    const ack: BatchAck = {
      ids: [...built.map((b) => b.id), ...empty],
      lastId: entries[entries.length - 1]![0],
      built: built.map((b) => b.id),
      seqs,
      published: out.length,
      resent,
      changes,
    };
    return { done: this.settleBatch(acked, previous, refused, ack) };
  }

  private async settleBatch(
    acked: Promise<readonly Refusal[]>,
    previous: Promise<void> | undefined,
    refused: (e: unknown) => Promise<never>,
    ack: BatchAck,
  ): Promise<void> {
    const refusals = await acked.catch(refused);
    await previous;
    await this.acknowledge(ack, refusals);
  }

  /**
   * XACKs a delivered batch (and forgets its seqs, and the refused ranges it passed); the messages the broker
   * refused one by one are parked and counted in the same MULTI (refusals.ts).
   */
  private async acknowledge(b: BatchAck, refusals: readonly Refusal[]): Promise<void> {
    const passed = this.ranges.filter((r) => r.to !== undefined && compareIds(r.to, b.lastId) <= 0);
    if (passed.length > 0) this.ranges = this.ranges.filter((r) => !passed.includes(r));
    // The deadband's references (or the interval's values) move with the entries they came from, atomically.
    await this.ackRedis.cloud.acknowledge(this.cfg.id, this.group, {
      ids: b.ids,
      built: b.built,
      changes: b.changes,
      refused: parked(refusals),
      ranges: passed.length > 0 ? this.ranges : undefined,
    });
    this.refusalLog.note(refusals);
    const last = b.seqs[b.seqs.length - 1];
    this.stats.published += b.published - refusals.length;
    this.stats.resent += b.resent;
    this.stats.entries += b.ids.length;
    if (last) this.stats.seq = Math.max(this.stats.seq, last.first + last.count - 1);
  }

  private outgoing(seq: number, u: UplinkMessage): Outgoing {
    const ts = this.cfg.include.timestamps;
    if (u.kind === 'alarm') return { kind: 'alarm', model: '', channel: '', payload: alarmPayload(seq, u.a, ts) };
    if (u.kind === 'notify') return { kind: 'notify', model: '', channel: '', payload: notifyPayload(seq, u.n, ts) };
    return { kind: u.m.of === 'channel' ? 'channel' : 'data', model: u.m.model, channel: u.m.channel, payload: messagePayload(seq, u.m, ts) };
  }

  /** The seqs of each entry's messages: those it was given before (a resend), or new ones, recorded before the first publish. */
  private async seqsOf(built: ReadonlyArray<{ id: string; msgs: readonly unknown[] }>, resend: boolean): Promise<EntrySeqs[]> {
    if (built.length === 0) return [];
    const known = resend
      ? await this.redis.cloud.entrySeqs(
          this.cfg.id,
          built.map((b) => b.id),
        )
      : [];
    const plan = planSeqs(
      built.map((b) => b.msgs.length),
      known,
      this.lastSeq,
    );
    if (plan.record.length > 0) {
      await this.redis.cloud.recordSeqs(
        this.cfg.id,
        plan.lastSeq,
        plan.record.map(([i, v]) => [built[i]!.id, v] as const),
      );
      this.lastSeq = plan.lastSeq;
    }
    return plan.seqs;
  }

  /** Drops the `n` oldest entries this link has not read: acknowledged unsent, counted. */
  private async trim(n: number): Promise<void> {
    const entries = await this.trimmer.read(n, undefined, '>');
    if (entries.length === 0) return;
    await this.redis.cloud.dropUnsent(
      this.cfg.id,
      this.group,
      entries.map(([id]) => id),
    );
    this.log.warn(
      { dropped: entries.length, maxBacklogMB: this.cfg.maxBacklogMB },
      'cloud link: its backlog passed maxBacklogMB; the oldest unsent entries were dropped',
    );
  }

  /**
   * refuse-new: opens a refused range when the kept backlog passes the bound,
   * closes it (counting its entries) once the kept backlog is under it again.
   * Returns the entries the open range holds so far.
   */
  private async refuseNew(backlog: number, meanBytes: number, bound: number): Promise<number> {
    const { lastId, added } = await this.redis.outbox.added(KEYS.outbox);
    const open = this.ranges.find((r) => r.to === undefined);
    const inOpen = open ? added - open.added : 0;
    const kept = (backlog - inOpen) * meanBytes;
    if (!open && meanBytes > 0 && kept > bound) {
      this.ranges.push({ from: lastId, added });
      await this.redis.cloud.saveRefusedRanges(this.cfg.id, this.ranges);
      this.log.warn({ maxBacklogMB: this.cfg.maxBacklogMB }, 'cloud link: its backlog passed maxBacklogMB; new entries are refused (overflow: refuse-new)');
      return 0;
    }
    if (open && kept <= bound) {
      open.to = lastId;
      await this.redis.cloud.closeRefusedRange(this.cfg.id, this.ranges, inOpen);
      this.log.warn({ notTaken: inOpen }, 'cloud link: its backlog is under maxBacklogMB again; new entries are taken again');
      return 0;
    }
    return inOpen;
  }
}
