/**
 * What a cloud link keeps in Redis beside its consumer group on the outbox
 * (its reads are the outbox's, outbox.ts). The link is the only writer of
 * each of its keys (KEYS.cloud*):
 *   seq       the last seq it gave a message (it survives restarts)
 *   inflight  outbox entry id → "firstSeq count" of the messages built from
 *             it, until its XACK; SNAPSHOT_FIELD: an interval snapshot closed
 *             by the clock, recorded before it is sent
 *   last      its per-point state (deadband references, interval values)
 *   refusing  the stream id ranges a refuse-new link refused (JSON)
 *   stats     its counters: dropped, notTaken, refused, lastRefusal
 *   refused   the messages the broker refused one by one, parked (bounded)
 *   resends…  requests to send them again and their progress (cloudParked.ts)
 * What must agree with an acknowledgement (the state, the seqs forgotten, the
 * refusals parked and counted) is written in the same MULTI as its XACK.
 */
import type { ChainableCommander } from 'ioredis';
import { redisCall, type RedisCore } from './core.js';
import { CloudParkedRedis } from './cloudParked.js';
import { KEYS } from './keys.js';

/** The refused messages a link keeps (the oldest go first; `refused` counts them all). */
export const PARKED_MAX = 10_000;

/** The inflight field of an interval snapshot closed by the clock (no entry to carry it): its messages, recorded before they are sent. */
const SNAPSHOT_FIELD = '@snapshot';
/** The field of `last` that names the publish mode the state was kept for. */
const PUBLISH_FIELD = '@publish';

/** Stream ids a refuse-new link does not take: after `from`, up to `to` (open while undefined); `added` is the stream's entries-added at `from`. */
export interface RefusedRange {
  from: string;
  to?: string;
  added: number;
}

/** A message the cloud refused, as it is parked (actors/cloud/refusals.ts makes them). */
export interface ParkedMessage {
  readonly seq: string;
  readonly topic: string;
  /** MQTT's reason code in hex, or the transport's own name (`HTTP 422`). */
  readonly reason: string;
  readonly payload: string;
}

/** What the cloud refused of a batch: the messages to park, and the last one as `voltage status` shows it. */
export interface ParkedRefusals {
  readonly messages: readonly ParkedMessage[];
  readonly last: string;
}

/** A link's counters (cloud:{link}:stats). */
export interface CloudCounters {
  readonly dropped: number;
  readonly refused: number;
  readonly notTaken: number;
  readonly lastRefusal: string | null;
  /** Parked messages the cloud took when they were sent again (deleted from the parked stream). */
  readonly unparked: number;
  /** Parked messages the cloud refused again when they were sent again (left parked). */
  readonly refusedAgain: number;
}

/** What a delivered batch's XACK carries along. */
export interface CloudAck {
  /** Every entry of the batch. */
  readonly ids: readonly string[];
  /** The entries with messages: their seqs are forgotten. */
  readonly built: readonly string[];
  /** The link's state the batch leaves (field, value, …). */
  readonly changes: readonly string[];
  readonly refused: ParkedRefusals | undefined;
  /** The refused ranges left, when the batch passed some (else they stay as stored). */
  readonly ranges: readonly RefusedRange[] | undefined;
}

/** Adds the refusals to a MULTI: parked (bounded), counted, the last one named. */
function park(tx: ChainableCommander, link: string, refused: ParkedRefusals | undefined): void {
  if (!refused || refused.messages.length === 0) return;
  for (const m of refused.messages)
    tx.xadd(KEYS.cloudRefused(link), 'MAXLEN', PARKED_MAX, '*', 'seq', m.seq, 'topic', m.topic, 'reason', m.reason, 'payload', m.payload);
  tx.hincrby(KEYS.cloudStats(link), 'refused', refused.messages.length).hset(KEYS.cloudStats(link), 'lastRefusal', refused.last);
}

export class CloudRedis {
  /** The parked messages as an operator reads them, and the requests to send them again. */
  readonly parked: CloudParkedRedis;

  constructor(private readonly core: RedisCore) {
    this.parked = new CloudParkedRedis(core);
  }

  private async exec(what: string, tx: ChainableCommander): Promise<void> {
    await redisCall(what, () => tx.exec());
  }

  /** The last seq the link gave a message (0 before its first). */
  async lastSeq(link: string): Promise<number> {
    return Number((await redisCall('GET', () => this.core.client.get(KEYS.cloudSeq(link)))) ?? 0);
  }

  /** The seqs recorded for these entries ("firstSeq count"), null where none is. */
  entrySeqs(link: string, ids: readonly string[]): Promise<Array<string | null>> {
    return redisCall('HMGET', () => this.core.client.hmget(KEYS.cloudInflight(link), ...ids));
  }

  /** Records the seqs of entries about to be published first, with the link's last seq, at once. */
  async recordSeqs(link: string, lastSeq: number, record: ReadonlyArray<readonly [string, string]>): Promise<void> {
    await this.exec(
      'MULTI',
      this.core.client
        .multi()
        .set(KEYS.cloudSeq(link), String(lastSeq))
        .hset(KEYS.cloudInflight(link), ...record.flat()),
    );
  }

  /** The link's state as stored, or undefined when it was kept for another publish mode (or is none). */
  async state(link: string, publish: string): Promise<Record<string, string> | undefined> {
    const hash = await redisCall('HGETALL', () => this.core.client.hgetall(KEYS.cloudLast(link)));
    return hash[PUBLISH_FIELD] === publish ? hash : undefined;
  }

  /** Drops the link's state; `publish`: the mode a new one is kept for (undefined: none is kept). */
  async resetState(link: string, publish: string | undefined): Promise<void> {
    const tx = this.core.client.multi().del(KEYS.cloudLast(link));
    if (publish !== undefined) tx.hset(KEYS.cloudLast(link), PUBLISH_FIELD, publish);
    await this.exec('MULTI', tx);
  }

  /** The messages (JSON) of an interval snapshot recorded and not yet acknowledged, or null. */
  recordedSnapshot(link: string): Promise<string | null> {
    return redisCall('HGET', () => this.core.client.hget(KEYS.cloudInflight(link), SNAPSHOT_FIELD));
  }

  /**
   * An interval closed by the clock, at once: the state it leaves, and (when it has messages) the link's last
   * seq and the snapshot's messages (JSON), recorded before they are sent.
   */
  async recordSnapshot(link: string, changes: readonly string[], snapshot: { readonly lastSeq: number; readonly messages: string } | undefined): Promise<void> {
    const tx = this.core.client.multi();
    if (changes.length > 0) tx.hset(KEYS.cloudLast(link), ...changes);
    if (snapshot) tx.set(KEYS.cloudSeq(link), String(snapshot.lastSeq)).hset(KEYS.cloudInflight(link), SNAPSHOT_FIELD, snapshot.messages);
    await this.exec('MULTI', tx);
  }

  /** A recorded snapshot answered: forgotten, with what the cloud refused of it parked, at once. */
  async snapshotAcked(link: string, refused: ParkedRefusals | undefined): Promise<void> {
    const tx = this.core.client.multi().hdel(KEYS.cloudInflight(link), SNAPSHOT_FIELD);
    park(tx, link, refused);
    await this.exec('MULTI', tx);
  }

  /** XACKs a delivered batch with what it carries along (the state, its seqs forgotten, the refusals parked, the ranges it passed), at once. */
  async acknowledge(link: string, group: string, a: CloudAck): Promise<void> {
    const tx = this.core.client.multi().xack(KEYS.outbox, group, ...a.ids);
    park(tx, link, a.refused);
    if (a.changes.length > 0) tx.hset(KEYS.cloudLast(link), ...a.changes);
    if (a.built.length > 0) tx.hdel(KEYS.cloudInflight(link), ...a.built);
    if (a.ranges) tx.set(KEYS.cloudRefusing(link), JSON.stringify(a.ranges));
    await this.exec('MULTI', tx);
  }

  /** The backlog bound (drop-oldest): entries acknowledged unsent and counted as dropped, at once. */
  async dropUnsent(link: string, group: string, ids: readonly string[]): Promise<void> {
    await this.exec(
      'MULTI',
      this.core.client
        .multi()
        .xack(KEYS.outbox, group, ...ids)
        .hincrby(KEYS.cloudStats(link), 'dropped', ids.length),
    );
  }

  /** A batch the cloud refused as a whole, counted. */
  async countRefused(link: string): Promise<void> {
    await redisCall('HINCRBY', () => this.core.client.hincrby(KEYS.cloudStats(link), 'refused', 1));
  }

  async counters(link: string): Promise<CloudCounters> {
    const stats = await redisCall('HGETALL', () => this.core.client.hgetall(KEYS.cloudStats(link)));
    return {
      dropped: Number(stats.dropped ?? 0),
      refused: Number(stats.refused ?? 0),
      notTaken: Number(stats.notTaken ?? 0),
      lastRefusal: stats.lastRefusal ?? null,
      unparked: Number(stats.unparked ?? 0),
      refusedAgain: Number(stats.refusedAgain ?? 0),
    };
  }

  /** The ranges a refuse-new link refused, as stored (none: empty). */
  async refusedRanges(link: string): Promise<RefusedRange[]> {
    const saved = await redisCall('GET', () => this.core.client.get(KEYS.cloudRefusing(link)));
    return saved ? (JSON.parse(saved) as RefusedRange[]) : [];
  }

  async saveRefusedRanges(link: string, ranges: readonly RefusedRange[]): Promise<void> {
    await redisCall('SET', () => this.core.client.set(KEYS.cloudRefusing(link), JSON.stringify(ranges)));
  }

  /** A refused range closed: the ranges stored and the entries it held counted as not taken, at once. */
  async closeRefusedRange(link: string, ranges: readonly RefusedRange[], notTaken: number): Promise<void> {
    await this.exec(
      'MULTI',
      this.core.client.multi().set(KEYS.cloudRefusing(link), JSON.stringify(ranges)).hincrby(KEYS.cloudStats(link), 'notTaken', notTaken),
    );
  }
}
