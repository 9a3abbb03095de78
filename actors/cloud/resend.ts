/**
 * Sends a link's parked messages again when an operator asks (the gateway's
 * POST …/refused/resend, `voltage cloud LINK --resend`), through the link's
 * own transport: same connection, credentials and TLS, nothing else opens one.
 *
 * The link's uplink calls `step` between batches (and when its read of the
 * outbox came back empty, so a request is noticed within a read's block, not
 * at the next data): each step sends at most RESEND_CHUNK parked messages, so
 * that a resend of the whole parked stream (10,000) goes in slices between the
 * live batches instead of holding them back. Each message goes with the seq,
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

/** The kind of a parked message, from its payload's first key after seq and ts (messages.ts writes them so). */
export function parkedKind(payload: string): Outgoing['kind'] {
  let keys: string[] = [];
  try {
    keys = Object.keys(JSON.parse(payload) as object);
  } catch {
    /* not JSON: sent as data */
  }
  const first = keys.find((k) => k !== 'seq' && k !== 'ts');
  return first === 'alarm' ? 'alarm' : first === 'rule' ? 'notify' : first === 'channel' ? 'channel' : 'data';
}

/** A parked message as the transport takes it: its own topic (MQTT), its kind (HTTP's body), its payload as it was. */
export function parkedOutgoing(p: ParkedEntry): Outgoing {
  return { kind: parkedKind(p.payload), model: '', channel: '', payload: p.payload, topic: p.topic };
}

export class ParkedResend {
  private current: ResendProgress | undefined;
  private checkedAt = 0;

  constructor(
    private readonly redis: VoltageRedis,
    private readonly link: string,
    private readonly transport: UplinkTransport,
    private readonly refusalLog: RefusalLog,
    private readonly log: Logger,
  ) {}

  /** A request is being handled (the uplink reads the outbox without waiting meanwhile). */
  get active(): boolean {
    return this.current !== undefined;
  }

  /** Whether `step` has something to do or should look for a request. */
  due(now = Date.now()): boolean {
    return this.current !== undefined || now - this.checkedAt >= CHECK_MS;
  }

  /** At most one chunk of the request at hand (taken first when there is none); throws CloudOutageError. */
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
    let refusals: readonly Refusal[] = [];
    if (chosen.length > 0) {
      try {
        const { acked } = await this.transport.deliver(chosen.map(parkedOutgoing), lost);
        refusals = await acked;
      } catch (e) {
        // HTTP: every message refused for its content is each one's answer, as for a batch partly taken.
        if (!(e instanceof CloudContentRefusedError)) throw e;
        refusals = e.refusals;
      }
    }
    const refused = new Set(refusals.map((r) => r.index));
    const cursor = rows[rows.length - 1]!.id;
    const last = refusals[refusals.length - 1];
    await this.redis.cloud.parked.step(this.link, p.request.id, {
      taken: chosen.filter((_, i) => !refused.has(i)).map((r) => r.id),
      refusedAgain: refusals.length,
      lastRefusal: last ? refusalSummary(last) : undefined,
      cursor,
    });
    this.refusalLog.note(refusals);
    this.current = { ...p, cursor };
  }
}
