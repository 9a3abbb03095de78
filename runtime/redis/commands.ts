/** Control commands in Redis: sending one (m2c), a channel consuming its stream and committing the end (cmd_result), the audit. */
import type { PointType } from '../config/site.js';
import type { CommandEntry, CommandOutcome, CommandRecord, CommandStatus } from '../domain/commands.js';
import { errorMessage, RedisFunctionError } from '../errors.js';
import { redisCall, type RedisCore } from './core.js';
import { fieldsOf } from './encoding.js';
import type { OutboxLimits } from './telemetry.js';
import { KEYS } from './keys.js';

/** The audit stream keeps about this many entries. */
const AUDIT_MAXLEN = '100000';

/** Commands this process accepted are remembered, the newest this many, to tell a lost one from one that never was. */
const ACCEPTED_MAX = 10_000;

export interface Accepted {
  readonly model: string;
  readonly name: string;
  readonly value: number;
  readonly source: string;
  readonly createdAt: number;
  readonly deadline: number;
}

/**
 * Why m2c refused a command, as an operator reads it: without the Function's name and Redis' error code before it,
 * and the value as it was sent (the library writes numbers with six decimals: 500.000000 → 500, 49.500000 → 49.5).
 */
export function m2cRefusal(e: unknown): string {
  return errorMessage(e)
    .replace(/^m2c: ((EVOLTAGE )?m2c: )?/, '')
    .replace(/(?<![\w.])-?\d+\.\d+(?![\w.])/g, (n) => String(Number(n)));
}

export class CommandsRedis {
  private readonly accepted = new Map<string, Accepted>();

  private readonly outboxMaxBytes: number;

  constructor(
    private readonly core: RedisCore,
    limits: OutboxLimits,
  ) {
    this.outboxMaxBytes = Math.round(limits.outboxMaxMB * 2 ** 20);
  }

  /** Sends a control command; rejects with a RedisFunctionError saying why when it is not valid. */
  async m2c(model: string, name: string, value: number, source: string, timeoutMs: number): Promise<string> {
    if (!Number.isFinite(value)) throw new RedisFunctionError('m2c', `value must be a finite number, got ${value}`);
    const createdAt = Date.now();
    const id = await this.core.fcall('m2c', { model, name, value, source, ts: createdAt, timeoutMs });
    this.remember(id, { model, name, value, source, createdAt, deadline: createdAt + timeoutMs });
    return id;
  }

  /** A command accepted by m2c (here, or inside another Function: rule_commit), so that one gone from Redis reads `lost`. */
  remember(id: string, a: Accepted): void {
    this.accepted.set(id, a);
    if (this.accepted.size > ACCEPTED_MAX) this.accepted.delete(this.accepted.keys().next().value!);
  }

  async commandResult(
    channel: string,
    id: string,
    status: CommandOutcome,
    message: string,
    group: string,
    entryId: string,
    readback: number | null,
  ): Promise<void> {
    await this.core.fcall('cmd_result', { channel, id, status, message, ts: Date.now(), group, entryId, readback, outboxMaxBytes: this.outboxMaxBytes });
  }

  async command(id: string): Promise<CommandRecord | undefined> {
    const h = await redisCall('HGETALL', () => this.core.client.hgetall(KEYS.command(id)));
    if (!h.id) {
      const a = this.accepted.get(id);
      if (!a) return undefined;
      // Records never expire: one accepted here and gone from Redis went with its data.
      return {
        id,
        model: a.model,
        name: a.name,
        channel: '',
        value: a.value,
        status: 'lost',
        source: a.source,
        message: 'Redis lost this command with its data (FLUSHALL, or a restart without persistence); whether the device applied it is unknown',
        createdAt: a.createdAt,
        updatedAt: a.createdAt,
        deadline: a.deadline,
        readback: null,
      };
    }
    return {
      id: h.id,
      model: h.model ?? '',
      name: h.name ?? '',
      channel: h.channel ?? '',
      value: Number(h.value),
      status: h.status as CommandStatus,
      message: h.message ?? '',
      source: h.source ?? '',
      createdAt: Number(h.createdAt),
      updatedAt: Number(h.updatedAt),
      deadline: Number(h.deadline),
      readback: h.readback ? Number(h.readback) : null,
    };
  }

  /**
   * Claims a requester's own id for a command (a cloud link's `id`) for `ttlMs`: undefined when it is new
   * (now claimed, ''), else what was recorded under it: '' while the first one is handled, then its answer.
   */
  async claimRequest(key: string, ttlMs: number): Promise<string | undefined> {
    const claimed = await redisCall('SET', () => this.core.client.set(key, '', 'PX', ttlMs, 'NX', 'GET'));
    return claimed ?? undefined;
  }

  /** Records the answer given to a claimed request id (kept as long as the claim). */
  async answerRequest(key: string, answer: string): Promise<void> {
    await redisCall('SET', () => this.core.client.set(key, answer, 'KEEPTTL'));
  }

  /** The consumer group of a channel's command stream; making it again is fine. */
  async ensureCommandGroup(channel: string, group: string): Promise<void> {
    await this.core.ensureGroup(KEYS.commandStream(channel), group);
  }

  /**
   * Commands for a channel's consumer: with `pending`, those delivered before and not
   * acknowledged (after a restart); otherwise new ones. Never blocks. Rejects with a
   * RedisError REDIS_NOGROUP when the group is gone (Redis lost its data).
   */
  async readCommands(channel: string, group: string, consumer: string, pending: boolean, count = 16): Promise<CommandEntry[]> {
    const res = (await redisCall('XREADGROUP', () =>
      this.core.client.xreadgroup('GROUP', group, consumer, 'COUNT', count, 'STREAMS', KEYS.commandStream(channel), pending ? '0' : '>'),
    )) as Array<[string, Array<[string, string[] | null]>]> | null;
    const out: CommandEntry[] = [];
    for (const [, entries] of res ?? []) {
      for (const [entryId, fields] of entries) {
        if (!fields) continue; // deleted while pending
        const f = fieldsOf(fields);
        out.push({ entryId, id: f.id ?? '', type: f.type as PointType, point: Number(f.point), value: Number(f.value), deadline: Number(f.deadline) });
      }
    }
    return out;
  }

  /** The audit entries of one command, oldest first (a scan of the bounded audit stream). */
  async auditOf(id: string, stream: string = KEYS.audit): Promise<Array<Record<string, string>>> {
    const entries = await redisCall('XREVRANGE', () => this.core.client.xrevrange(stream, '+', '-', 'COUNT', 5000));
    return entries
      .map(([, fields]) => fieldsOf(fields))
      .filter((f) => f.id === id)
      .reverse();
  }

  /** Appends an entry (field, value, …) to the bounded audit stream. */
  private async audit(...fields: string[]): Promise<void> {
    await redisCall('XADD', () => this.core.client.xadd(KEYS.audit, 'MAXLEN', '~', AUDIT_MAXLEN, '*', ...fields));
  }

  /** An operator's action other than a command (an alarm's acknowledgement, a cloud link's resend), accepted or refused, for the audit stream. */
  auditAction(event: string, id: string, who: string, outcome: string, message: string): Promise<void> {
    return this.audit('event', event, 'id', id, 'who', who, 'at', String(Date.now()), 'outcome', outcome, 'message', message);
  }

  /** A command refused before it was recorded, for the audit stream (accepted ones are written by m2c). */
  auditRejected(who: string, model: string, name: string, value: unknown, message: string): Promise<void> {
    return this.audit(
      'event',
      'rejected',
      'id',
      '',
      'who',
      who,
      'model',
      model,
      'name',
      name,
      'value',
      String(value),
      'at',
      String(Date.now()),
      'message',
      message,
    );
  }
}
