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
import { errorMessage } from '../../runtime/errors.js';
import type { StreamEntries } from '../../runtime/redis/outbox.js';
import type { VoltageRedis } from '../../runtime/redis/voltageRedis.js';

export type { StreamEntries } from '../../runtime/redis/outbox.js';

/** Transient to a machine: an outage, retried with backoff, not a restart. */
export class OutboxOutageError extends Error {
  readonly transient = true;
}

export interface ModelValueTarget {
  readonly model: string;
  readonly name: string;
}

export { compareIds } from '../../runtime/redis/encoding.js';

/** What Redis did, as an outage of the consumer. */
async function outage<T>(call: Promise<T>): Promise<T> {
  try {
    return await call;
  } catch (e) {
    throw new OutboxOutageError(`Redis: ${errorMessage(e)}`);
  }
}

export class OutboxConsumer {
  /** Entries delivered to this consumer but not acknowledged may exist: read them first (from `pendingAfter`). */
  pendingMayExist = true;
  /**
   * Pending entries are read after this id. Undefined (the default): from id 0 every time, for a consumer that reads its
   * pending entries again after a failure and acknowledges each batch of them before the next read. A consumer that holds
   * what it read, unacknowledged, until it is written (the history writer keeps prepared batches while its database is
   * down) sets the newest id it holds instead, and the cursor moves past each pending batch read, so that nothing it holds
   * is read twice and nothing delivered to it and lost on the way (a reply cut off) stays pending unread.
   */
  pendingAfter: string | undefined;

  constructor(
    private readonly redis: VoltageRedis,
    readonly stream: string,
    readonly group: string,
    readonly consumer: string,
  ) {}

  /** Makes the group (from the stream's start) if it is missing; pending entries are read first next. */
  async ensureGroup(): Promise<void> {
    await outage(this.redis.outbox.ensureGroup(this.stream, this.group));
    this.pendingMayExist = true;
  }

  /** The c2m mapping's generation (mapping:c2m:gen): while it is the same, the mapping is (null: not known). */
  mappingGeneration(): Promise<string | null> {
    return outage(this.redis.site.c2mGeneration());
  }

  /** mapping:c2m as `channel:type:point` → model value. */
  async readMapping(): Promise<Map<string, ModelValueTarget>> {
    const mapping = await outage(this.redis.site.c2mMapping());
    const next = new Map<string, ModelValueTarget>();
    for (const [point, target] of mapping) {
      const sep = target.indexOf(':');
      if (sep > 0) next.set(point, { model: target.slice(0, sep), name: target.slice(sep + 1) });
    }
    return next;
  }

  /** Pending entries of this consumer while there are any, else new ones (waiting up to blockMs when given). */
  async next(count: number, blockMs?: number): Promise<StreamEntries> {
    if (this.pendingMayExist) {
      const pending = await this.read(count, undefined, this.pendingAfter ?? '0');
      if (pending.length > 0) {
        if (this.pendingAfter !== undefined) this.pendingAfter = pending[pending.length - 1]![0];
        return pending;
      }
      this.pendingMayExist = false;
    }
    return this.read(count, blockMs, '>');
  }

  read(count: number, blockMs: number | undefined, from: string): Promise<StreamEntries> {
    return outage(this.redis.outbox.readGroup(this.stream, this.group, this.consumer, { count, blockMs, from }));
  }
}
