/**
 * One consumer group on the outbox stream, as every outbox consumer (the
 * history writers, the cloud links) reads it: the group made from the
 * stream's start (a new consumer gets the whole backlog), entries delivered
 * but not acknowledged read again first (from id 0) after a restart or a
 * failure, then new ones ('>'), and the c2m mapping that turns channel points
 * into model values. It never acknowledges on its own: the consumer does,
 * once the entries are where they go.
 *
 * Redis errors come back as OutboxOutageError (transient): the group may be
 * gone because Redis lost its data, and connecting again makes it again.
 */
import type { Redis } from 'ioredis';
import { errorMessage } from '../../runtime/errors.js';
import { RedisCore } from '../../runtime/redis/core.js';
import { KEYS } from '../../runtime/redis/keys.js';

export type StreamEntries = Array<[string, string[]]>;
type ReadReply = Array<[string, StreamEntries]> | null;

/** Transient to a machine: an outage, retried with backoff, not a restart. */
export class OutboxOutageError extends Error {
  readonly transient = true;
}

export interface ModelValueTarget {
  readonly model: string;
  readonly name: string;
}

export { compareIds } from '../../runtime/redis/encoding.js';

export class OutboxConsumer {
  /** Entries delivered to this consumer but not acknowledged may exist: read from id 0 first. */
  pendingMayExist = true;

  constructor(
    private readonly redis: Redis,
    readonly stream: string,
    readonly group: string,
    readonly consumer: string,
  ) {}

  /** Makes the group (from the stream's start) if it is missing; pending entries are read first next. */
  async ensureGroup(): Promise<void> {
    try {
      await RedisCore.of(this.redis).ensureGroup(this.stream, this.group);
    } catch (e) {
      throw new OutboxOutageError(`Redis: ${errorMessage(e)}`);
    }
    this.pendingMayExist = true;
  }

  /** mapping:c2m as `channel:type:point` → model value. */
  async readMapping(): Promise<Map<string, ModelValueTarget>> {
    let flat: Record<string, string>;
    try {
      flat = await this.redis.hgetall(KEYS.mappingC2m);
    } catch (e) {
      throw new OutboxOutageError(`Redis: ${errorMessage(e)}`);
    }
    const next = new Map<string, ModelValueTarget>();
    for (const [point, target] of Object.entries(flat)) {
      const sep = target.indexOf(':');
      if (sep > 0) next.set(point, { model: target.slice(0, sep), name: target.slice(sep + 1) });
    }
    return next;
  }

  /** Pending entries of this consumer while there are any, else new ones (waiting up to blockMs when given). */
  async next(count: number, blockMs?: number): Promise<StreamEntries> {
    if (this.pendingMayExist) {
      const pending = await this.read(count, undefined, '0');
      if (pending.length > 0) return pending;
      this.pendingMayExist = false;
    }
    return this.read(count, blockMs, '>');
  }

  async read(count: number, blockMs: number | undefined, from: '0' | '>'): Promise<StreamEntries> {
    let reply: ReadReply;
    try {
      reply = (
        blockMs === undefined
          ? await this.redis.xreadgroup('GROUP', this.group, this.consumer, 'COUNT', count, 'STREAMS', this.stream, from)
          : await this.redis.xreadgroup(
              'GROUP',
              this.group,
              this.consumer,
              'COUNT',
              count,
              'BLOCK',
              Math.max(1, Math.round(blockMs)),
              'STREAMS',
              this.stream,
              from,
            )
      ) as ReadReply;
    } catch (e) {
      throw new OutboxOutageError(`Redis: ${errorMessage(e)}`);
    }
    return reply?.[0]?.[1] ?? [];
  }
}
