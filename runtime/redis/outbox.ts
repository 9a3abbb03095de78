/**
 * The outbox as its consumers read it (the history writers, the cloud links):
 * a consumer group each, made from the stream's start; its entries read with
 * XREADGROUP (pending ones from id 0, new ones from '>'), read again by id
 * range, and acknowledged. Appending is not here: c2m, model_set and the
 * other Functions append (outbox_add in lua/core.lua).
 *
 * A consumer may hold entries it acknowledged from the outbox's trim (its
 * `hold:{group}` field in the stats hash: the lowest id it may read again);
 * the trim in lua/core.lua reads it.
 */
import { redisCall, toRedisError, type RedisCore } from './core.js';
import { KEYS } from './keys.js';

/** Stream entries as XREADGROUP and XRANGE give them: id and the flat field list (none for an entry trimmed while pending). */
export type StreamEntries = Array<[string, string[]]>;
type ReadReply = Array<[string, StreamEntries]> | null;

export interface ReadGroupOptions {
  readonly count: number;
  /** Wait up to this long for a new entry (XREADGROUP BLOCK); undefined: never wait. */
  readonly blockMs?: number;
  /** '0' (or an id: those after it): the entries delivered to this consumer and not acknowledged; '>': new ones. */
  readonly from: string;
}

/** The field of the outbox's stats hash that holds a group's entries from the trim. */
function holdField(group: string): string {
  return `hold:${group}`;
}

export class OutboxRedis {
  constructor(private readonly core: RedisCore) {}

  /** XGROUP CREATE from the stream's start (a new consumer gets the whole backlog); a group that exists is fine. Returns whether it was made. */
  ensureGroup(stream: string, group: string): Promise<boolean> {
    return this.core.ensureGroup(stream, group);
  }

  /** One XREADGROUP of a consumer; rejects with a RedisError REDIS_NOGROUP when the group is gone (Redis lost its data). */
  async readGroup(stream: string, group: string, consumer: string, o: ReadGroupOptions): Promise<StreamEntries> {
    const client = this.core.client;
    const reply = (await redisCall('XREADGROUP', () =>
      o.blockMs === undefined
        ? client.xreadgroup('GROUP', group, consumer, 'COUNT', o.count, 'STREAMS', stream, o.from)
        : client.xreadgroup('GROUP', group, consumer, 'COUNT', o.count, 'BLOCK', Math.max(1, Math.round(o.blockMs)), 'STREAMS', stream, o.from),
    )) as ReadReply;
    return reply?.[0]?.[1] ?? [];
  }

  /** Entries from `from` to `to` (XRANGE: ids, '-', '+', or '(' before an id for an exclusive start), at most `count`. */
  async range(stream: string, from: string, to: string, count: number): Promise<StreamEntries> {
    return (await redisCall('XRANGE', () => this.core.client.xrange(stream, from, to, 'COUNT', count))) as StreamEntries;
  }

  /** The id of the oldest entry the stream holds, or undefined when it is empty. */
  async oldestId(stream: string): Promise<string | undefined> {
    return (await this.range(stream, '-', '+', 1))[0]?.[0];
  }

  /** The stream's last id and how many entries were ever added to it (XINFO STREAM: last-generated-id, entries-added). */
  async added(stream: string): Promise<{ readonly lastId: string; readonly added: number }> {
    const info = (await redisCall('XINFO', () => this.core.client.xinfo('STREAM', stream))) as unknown[];
    const at = (name: string) => info[info.indexOf(name) + 1];
    return { lastId: String(at('last-generated-id')), added: Number(at('entries-added')) };
  }

  /**
   * XACKs entries of a group and, in the same MULTI, holds the group's entries from `hold` on from the
   * outbox's trim (undefined: holds none): acknowledged, they would otherwise be trimmed.
   */
  async ackHolding(stream: string, group: string, ids: readonly string[], hold: string | undefined): Promise<void> {
    const m = this.core.client.multi().xack(stream, group, ...ids);
    const r = await redisCall('XACK', () => (hold ? m.hset(KEYS.outboxStats, holdField(group), hold) : m.hdel(KEYS.outboxStats, holdField(group))).exec());
    const failed = r?.find(([e]) => e)?.[0];
    if (failed) throw toRedisError(failed, 'XACK');
  }
}
