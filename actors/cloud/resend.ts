/**
 * Sends a link's parked messages again when an operator asks (the gateway's
 * POST …/refused/resend, `voltage cloud LINK --resend`), through the link's
 * own transport: same connection, credentials and TLS, nothing else opens one.
 *
 * The link's uplink calls `step` between batches (and when its read of the
 * outbox came back empty, so a request is noticed within a read's block, not
 * at the next data): each step hands out at most RESEND_CHUNK parked
 * messages and returns; their answer is awaited and committed in the
 * background while the live batches go on, and the next step waits for it.
 * So a resend of the whole parked stream (10,000) goes in slices between the
 * live batches instead of holding them back (one slice out at a time; the
 * live messages' p99 while 10,000 were resent: ~35 ms against ~80 when each
 * step waited for its answer, ~250 ms in one step; docs/benchmarks.md round
 * 21). Each message goes with the seq,
 * topic and payload it was parked with; it is explicitly out of order (the
 * messages after it went long ago). One the cloud takes is deleted from the
 * parked stream with its count, in one MULTI; one refused again stays parked
 * and is counted (`refusedAgain`) and logged as any refusal. A step cut off by
 * a lost connection leaves its messages parked and the request where it was:
 * they go again after the reconnect (a message may then arrive twice, with the
 * same seq; the cloud drops duplicates by seq, as for the live uplink).
 *
 * It never reads the outbox and never touches the live seqs.
 */
import { errorMessage } from '../../runtime/errors.js';
import type { Logger } from '../../runtime/logger.js';
import { inSeqRange, seqRangeText } from '../../runtime/domain/cloudResend.js';
import type { ParkedEntry, ResendProgress } from '../../runtime/redis/cloudParked.js';
import type { VoltageRedis } from '../../runtime/redis/voltageRedis.js';
import { refusalSummary, type RefusalLog } from './refusals.js';
import { CloudContentRefusedError, CloudOutageError, type Outgoing, type Refusal, type UplinkTransport } from './transport.js';

/** The most parked messages one step reads (and sends). */
export const RESEND_CHUNK = 100;
/** While no request is being handled, the requests are looked for at most this often. */
const CHECK_MS = 250;
/** While a resend runs, the uplink's read of the outbox waits at most this long: its steps go on while the outbox is quiet. */
const RESEND_READ_MS = 5;

/** The first key after seq and ts of a payload as messages.ts writes it. */
const FIRST_KEY = /^\{"seq":\d+,(?:"ts":\d+,)?"(\w+)"/;

/** The kind of a parked message, from its payload's first key after seq and ts (messages.ts writes them so; read, not parsed). */
export function parkedKind(payload: string): Outgoing['kind'] {
  const first = FIRST_KEY.exec(payload)?.[1];
  return first === 'alarm' ? 'alarm' : first === 'rule' ? 'notify' : first === 'channel' ? 'channel' : 'data';
}

/** A parked message as the transport takes it: its own topic (MQTT), its kind (HTTP's body), its payload as it was. */
export function parkedOutgoing(p: ParkedEntry): Outgoing {
  return { kind: parkedKind(p.payload), model: '', channel: '', payload: p.payload, topic: p.topic };
}

export class ParkedResend {
  private current: ResendProgress | undefined;
  private checkedAt = 0;
  /** The step out: its messages' acknowledgement, then its commit (never rejects). */
  private settling: Promise<void> | undefined;

  constructor(
    private readonly redis: VoltageRedis,
    /** Where a slice's commit goes: the reading connection may be blocked in the uplink's XREADGROUP. */
    private readonly ackRedis: VoltageRedis,
    private readonly link: string,
    private readonly transport: UplinkTransport,
    private readonly refusalLog: RefusalLog,
    private readonly log: Logger,
  ) {}

  /** A request is being handled. */
  get active(): boolean {
    return this.current !== undefined;
  }

  /** Whether `step` has something to do or should look for a request. */
  due(now = Date.now()): boolean {
    if (this.settling) return false;
    return this.current !== undefined || now - this.checkedAt >= CHECK_MS;
  }

  /** How long the uplink's read of the outbox may wait: `blockMs`, or briefly while a resend runs. */
  readWaitMs(blockMs: number): number {
    return this.current === undefined ? blockMs : Math.min(blockMs, RESEND_READ_MS);
  }

  /** Settles once the step out is answered and committed (a graceful stop waits for it). */
  idle(): Promise<void> {
    return this.settling ?? Promise.resolve();
  }

  /**
   * Hands out at most one slice of the request at hand (taken first when there is none); its answer is committed
   * in the background (`idle`). Throws CloudOutageError when the slice cannot be handed out.
   */
  async step(lost: () => boolean): Promise<void> {
    try {
      if (!this.current && !(await this.take())) return;
      await this.sendChunk(this.current!, lost);
    } catch (e) {
      throw e instanceof CloudOutageError ? e : new CloudOutageError(`resending parked messages: ${errorMessage(e)}`);
    }
  }

  private async take(): Promise<boolean> {
    this.checkedAt = Date.now();
    const next = await this.redis.cloud.parked.nextRequest(this.link);
    if (!next) return false;
    const until = next.progress.state === 'running' ? null : await this.redis.cloud.parked.lastId(this.link);
    this.current = await this.redis.cloud.parked.begin(this.link, next.request, next.progress, until);
    this.log.info(
      { request: next.request.id, who: next.request.who, range: seqRangeText(next.request) },
      'cloud link: sending parked messages again, out of order, between the live batches',
    );
    return true;
  }

  private async sendChunk(p: ResendProgress, lost: () => boolean): Promise<void> {
    const rows = p.until === null ? [] : await this.redis.cloud.parked.after(this.link, p.cursor, p.until, RESEND_CHUNK);
    if (rows.length === 0) {
      await this.redis.cloud.parked.finish(this.link, p.request.id);
      this.current = undefined;
      const o = await this.redis.cloud.parked.outcome(this.link, p.request.id);
      this.log.info({ request: p.request.id, resent: o?.resent ?? 0, refusedAgain: o?.refused ?? 0 }, 'cloud link: the parked messages were sent again');
      return;
    }
    const chosen = rows.filter((r) => inSeqRange(r.seq, p.request));
    const cursor = rows[rows.length - 1]!.id;
    let acked: Promise<readonly Refusal[]> = Promise.resolve([]);
    if (chosen.length > 0) {
      try {
        acked = (await this.transport.deliver(chosen.map(parkedOutgoing), lost)).acked;
      } catch (e) {
        // HTTP: every message refused for its content is each one's answer, as for a batch partly taken.
        if (!(e instanceof CloudContentRefusedError)) throw e;
        acked = Promise.resolve(e.refusals);
      }
    }
    // Answered and committed while the live batches go on (waiting here held the next live batch behind the
    // slice's round trip: docs/benchmarks.md round 21); the next step waits for it.
    this.settling = this.settle(p, chosen, cursor, acked).finally(() => {
      this.settling = undefined;
    });
  }

  private async settle(p: ResendProgress, chosen: readonly ParkedEntry[], cursor: string, acked: Promise<readonly Refusal[]>): Promise<void> {
    try {
      const refusals = await acked;
      const refused = new Set(refusals.map((r) => r.index));
      const last = refusals[refusals.length - 1];
      await this.ackRedis.cloud.parked.step(this.link, p.request.id, {
        taken: chosen.filter((_, i) => !refused.has(i)).map((r) => r.id),
        refusedAgain: refusals.length,
        lastRefusal: last ? refusalSummary(last) : undefined,
        cursor,
      });
      this.refusalLog.note(refusals);
      this.current = { ...p, cursor };
    } catch (e) {
      // Not answered (the connection went: the uplink sees it too) or not committed: the slice stays parked, the
      // request where it was, and the slice goes again (a message the cloud had taken arrives twice, same seq).
      this.log.warn({ err: e, request: p.request.id }, 'cloud link: a slice of a resend was not acknowledged; it is sent again');
    }
  }
}
