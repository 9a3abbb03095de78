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
 * parked stream with its count, in one Function call (cloud_resend_step); one refused again stays parked
 * and is counted (`refusedAgain`) and logged as any refusal. A step cut off by
 * a lost connection leaves its messages parked and the request where it was:
 * they go again after the reconnect (a message may then arrive twice, with the
 * same seq; the cloud drops duplicates by seq, as for the live uplink). A
 * slice the cloud fails without refusing its messages one by one (an HTTP
 * 500 or 404 to old payloads) is no outage: the live batches go on and it is
 * tried again RETRY_MS later; one that fails RESEND_FAILURES_MAX times in a
 * row (a broker that DISCONNECTs on it included) ends the request `failed`,
 * and an operator's cancel ends it `cancelled` at its next step: what it had
 * not sent stays parked. The uplink takes a step after its live batch is on
 * its way, not before.
 *
 * It never reads the outbox and never touches the live seqs.
 */
import { errorMessage } from '../../runtime/errors.js';
import type { Logger } from '../../runtime/logger.js';
import { inSeqRange, RESEND_FAILURES_MAX, seqRangeText } from '../../runtime/domain/cloudResend.js';
import type { ParkedEntry, ResendProgress } from '../../runtime/redis/cloudParked.js';
import type { VoltageRedis } from '../../runtime/redis/voltageRedis.js';
import { refusalSummary, type RefusalLog } from './refusals.js';
import { CloudContentRefusedError, CloudOutageError, CloudRefusedError, type Outgoing, type Refusal, type UplinkTransport } from './transport.js';

/** The most parked messages one step reads (and sends). */
export const RESEND_CHUNK = 100;
/**
 * A transport that splits a refused batch (HTTP) starts a resend with slices this small, doubled after each slice
 * taken without a refusal up to RESEND_CHUNK, and back to this after a slice refused whole: a slice refused whole
 * costs it 2n − 1 requests inside one step, before the next live batch (199 for 100).
 */
export const RESEND_CHUNK_SPLIT = 16;
/** While no request is being handled, the requests are looked for at most this often. */
const CHECK_MS = 250;
/** While a resend runs, the uplink's read of the outbox waits at most this long: its steps go on while the outbox is quiet. */
const RESEND_READ_MS = 5;
/** A slice that failed is tried again this long after. */
const RETRY_MS = 500;

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

/** The next slice's size where refusals are split: doubled after a slice taken whole, back to the least after one refused whole. */
export function nextChunk(chunk: number, sent: number, refused: number): number {
  if (sent > 0 && refused === sent) return RESEND_CHUNK_SPLIT;
  return refused === 0 ? Math.min(RESEND_CHUNK, chunk * 2) : chunk;
}

export class ParkedResend {
  private current: ResendProgress | undefined;
  private checkedAt = 0;
  /** The step out: its messages' acknowledgement, then its commit (never rejects). */
  private settling: Promise<void> | undefined;
  /** After a slice failed, it is tried again from then on. */
  private retryAt = 0;
  /** How many parked messages the next step reads (RESEND_CHUNK_SPLIT up to RESEND_CHUNK where refusals are split). */
  private chunk = RESEND_CHUNK;

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
    return this.current !== undefined ? now >= this.retryAt : now - this.checkedAt >= CHECK_MS;
  }

  /**
   * How long the uplink's read of the outbox may wait: briefly while a resend has a step to take, else `blockMs`
   * (while a slice is out, or waits to be tried again, the next step cannot begin: a short read would only spin).
   */
  readWaitMs(blockMs: number, now = Date.now()): number {
    return this.current !== undefined && this.due(now) ? Math.min(blockMs, RESEND_READ_MS) : blockMs;
  }

  /** Settles once the step out is answered and committed (a graceful stop waits for it). */
  idle(): Promise<void> {
    return this.settling ?? Promise.resolve();
  }

  /**
   * Hands out at most one slice of the request at hand (taken first when there is none); its answer is committed
   * in the background (`idle`). A slice the cloud fails without the connection going (an HTTP 500, 404, …) is
   * counted and tried again later, never an outage of the link. Throws CloudOutageError when the connection went
   * (or Redis failed).
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
    this.retryAt = 0;
    this.chunk = this.transport.splitsRefusals ? RESEND_CHUNK_SPLIT : RESEND_CHUNK;
    this.log.info(
      { request: next.request.id, who: next.request.who, range: seqRangeText(next.request) },
      'cloud link: sending parked messages again, out of order, between the live batches',
    );
    return true;
  }

  private async sendChunk(p: ResendProgress, lost: () => boolean): Promise<void> {
    const [rows, cancelledBy] = await Promise.all([
      p.until === null ? Promise.resolve([]) : this.redis.cloud.parked.after(this.link, p.cursor, p.until, this.chunk),
      this.redis.cloud.parked.cancelledBy(this.link, p.request.id),
    ]);
    if (cancelledBy !== null) return this.end(p, 'cancelled', `cancelled by ${cancelledBy}`);
    if (rows.length === 0) return this.end(p, 'done');
    const chosen = rows.filter((r) => inSeqRange(r.seq, p.request));
    const cursor = rows[rows.length - 1]!.id;
    let acked: Promise<readonly Refusal[]> = Promise.resolve([]);
    if (chosen.length > 0) {
      try {
        acked = (await this.transport.deliver(chosen.map(parkedOutgoing), lost, { parked: true })).acked;
      } catch (e) {
        // HTTP: every message refused for its content is each one's answer, as for a batch partly taken.
        if (e instanceof CloudContentRefusedError) acked = Promise.resolve(e.refusals);
        else {
          await this.sliceFailed(p, chosen.length, e);
          // The connection went (the live batches would fail too): an outage. The cloud answered (a 500, a 404):
          // the slice waits to be tried again and the live batches go on.
          if (lost() || (e instanceof CloudOutageError && !(e instanceof CloudRefusedError))) throw e;
          return;
        }
      }
    }
    // Answered and committed while the live batches go on (waiting here held the next live batch behind the
    // slice's round trip: docs/benchmarks.md round 21); the next step waits for it.
    this.settling = this.settle(p, chosen, cursor, acked).finally(() => {
      this.settling = undefined;
    });
  }

  private async settle(p: ResendProgress, chosen: readonly ParkedEntry[], cursor: string, acked: Promise<readonly Refusal[]>): Promise<void> {
    let refusals: readonly Refusal[];
    try {
      refusals = await acked;
    } catch (e) {
      // Not answered: the connection went (an MQTT broker that DISCONNECTs on a parked message too: counted, so
      // that it ends the request instead of cutting the link for ever); the slice goes again after the reconnect.
      await this.sliceFailed(p, chosen.length, e).catch((x: unknown) =>
        this.log.warn({ err: x, request: p.request.id }, 'cloud link: a failed slice of a resend was not counted'),
      );
      return;
    }
    try {
      const refused = new Set(refusals.map((r) => r.index));
      const last = refusals[refusals.length - 1];
      const stored = await this.ackRedis.cloud.parked.step(this.link, p.request.id, p.cursor, {
        taken: chosen.filter((_, i) => !refused.has(i)).map((r) => r.id),
        refusedAgain: refusals.length,
        lastRefusal: last ? refusalSummary(last) : undefined,
        cursor,
      });
      if (stored === cursor) this.refusalLog.note(refusals);
      if (this.transport.splitsRefusals) this.chunk = nextChunk(this.chunk, chosen.length, refusals.length);
      this.current = { ...p, cursor: stored };
      this.retryAt = 0;
    } catch (e) {
      // Not committed, or its reply lost: the cursor is read back (a commit that was written is not written twice);
      // what was not committed stays parked and goes again (a message the cloud had taken arrives twice, same seq).
      this.log.warn({ err: e, request: p.request.id }, 'cloud link: a slice of a resend was not committed; it is sent again');
      const stored = await this.ackRedis.cloud.parked.cursor(this.link, p.request.id).catch(() => undefined);
      if (stored !== undefined) this.current = { ...p, cursor: stored };
    }
  }

  /**
   * A slice not answered (refused whole by a status that is not about its content, or the connection went):
   * counted at the request's cursor, tried again after RETRY_MS; the RESEND_FAILURES_MAXth time in a row the request
   * ends `failed`, the slice counted as refused again, and it and the rest stay parked.
   */
  private async sliceFailed(p: ResendProgress, messages: number, e: unknown): Promise<void> {
    const why = errorMessage(e);
    const times = await this.ackRedis.cloud.parked.failed(this.link, p.request.id, why);
    this.retryAt = Date.now() + RETRY_MS;
    if (times < RESEND_FAILURES_MAX) {
      this.log.warn({ request: p.request.id, err: why, times }, 'cloud link: a slice of a resend failed; it is sent again');
      return;
    }
    await this.ackRedis.cloud.parked.step(this.link, p.request.id, p.cursor, { taken: [], refusedAgain: messages, lastRefusal: undefined, cursor: p.cursor });
    await this.end(p, 'failed', why);
  }

  /** The request ended: its outcome recorded and logged; the next one is looked for. */
  private async end(p: ResendProgress, state: 'done' | 'failed' | 'cancelled', why?: string): Promise<void> {
    await this.ackRedis.cloud.parked.finish(this.link, p.request.id, state, why);
    this.current = undefined;
    this.retryAt = 0;
    const o = await this.ackRedis.cloud.parked.outcome(this.link, p.request.id);
    const fields = { request: p.request.id, state, resent: o?.resent ?? 0, refusedAgain: o?.refused ?? 0, lastError: why };
    if (state === 'done') this.log.info(fields, 'cloud link: the parked messages were sent again');
    else this.log.warn(fields, `cloud link: a resend of parked messages ${state === 'failed' ? 'failed' : 'was cancelled'}; what it had not sent stays parked`);
  }
}
