/**
 * A cloud link's parked messages (`cloud:{link}:refused`, written by
 * cloud.ts's `park`) as an operator reads them, and the requests to send them
 * again: a request is one XADD to `cloud:{link}:resends` (the gateway, the
 * CLI); the link takes the requests after `cloud:{link}:resends:done` one at
 * a time, keeps its progress in `cloud:{link}:resend:{request}` (the parked
 * stream's last id when it began, its cursor, what was resent and refused
 * again), and finishes it by moving `…:resends:done` on. The link is the only
 * writer of the progress, the cursor and the parked stream's deletions.
 *
 * A parked message the cloud took on a resend is deleted from the parked
 * stream in the same Function call as its count (`unparked` in
 * `cloud:{link}:stats`, by what XDEL removed; the cursor moves only from
 * where the link expects it: lua/cloud.lua), so that `refused − unparked`
 * stays the number parked (below PARKED_MAX) even when a commit whose reply
 * was lost is replayed; one refused again stays where it is and is counted in
 * `refusedAgain`. A request ends `done`, `failed` (a slice failed
 * RESEND_FAILURES_MAX times in a row, `lastError`) or `cancelled` (`cancel`,
 * set by an operator, seen at the next step).
 */
import type { ResendOutcome, ResendState, SeqRange } from '../domain/cloudResend.js';
import { redisCall, type RedisCore } from './core.js';
import { compareIds, fieldsOf } from './encoding.js';
import { KEYS } from './keys.js';

/** The resend requests a link keeps (about: MAXLEN ~). */
const REQUESTS_MAX = 1_000;
/** How long a finished request's outcome is kept. */
const OUTCOME_TTL_S = 86_400;

/** A parked message with its id in the parked stream. */
export interface ParkedEntry {
  readonly id: string;
  readonly seq: string;
  readonly topic: string;
  readonly reason: string;
  readonly payload: string;
}

/** A resend request as recorded. */
export interface ResendRequest extends SeqRange {
  readonly id: string;
  readonly who: string;
  readonly requestedAt: number;
}

/** A request the link has begun: where it stops (the parked stream's last id then) and where it stands. */
export interface ResendProgress {
  readonly request: ResendRequest;
  /** The last parked id it covers (null: nothing was parked). */
  readonly until: string | null;
  /** The last parked id it handled ('0-0' before the first). */
  readonly cursor: string;
}

/** One step of a resend: what the cloud took (deleted from the parked stream), what it refused again, how far it got. */
export interface ResendStep {
  readonly taken: readonly string[];
  readonly refusedAgain: number;
  readonly lastRefusal: string | undefined;
  readonly cursor: string;
}

const parkedOf = ([id, flat]: [string, string[]]): ParkedEntry => {
  const f = fieldsOf(flat);
  return { id, seq: f.seq ?? '', topic: f.topic ?? '', reason: f.reason ?? '', payload: f.payload ?? '' };
};

const seqField = (v: string | undefined) => (v === undefined || v === '' ? null : Number(v));

function requestOf(id: string, f: Record<string, string>): ResendRequest {
  return { id, fromSeq: seqField(f.fromSeq), toSeq: seqField(f.toSeq), who: f.who ?? '', requestedAt: Number(f.at ?? 0) };
}

export class CloudParkedRedis {
  constructor(private readonly core: RedisCore) {}

  /** How many messages are parked. */
  count(link: string): Promise<number> {
    return redisCall('XLEN', () => this.core.client.xlen(KEYS.cloudRefused(link)));
  }

  /** The newest `count` parked messages, newest first. */
  async newest(link: string, count: number): Promise<ParkedEntry[]> {
    const rows = await redisCall('XREVRANGE', () => this.core.client.xrevrange(KEYS.cloudRefused(link), '+', '-', 'COUNT', count));
    return rows.map(parkedOf);
  }

  /** Up to `count` parked messages after `cursor` (excluded), up to `until` (included), oldest first. */
  async after(link: string, cursor: string, until: string, count: number): Promise<ParkedEntry[]> {
    const rows = await redisCall('XRANGE', () => this.core.client.xrange(KEYS.cloudRefused(link), `(${cursor}`, until, 'COUNT', count));
    return rows.map(parkedOf);
  }

  /** The id of the newest parked message, or null when none is. */
  async lastId(link: string): Promise<string | null> {
    const rows = await redisCall('XREVRANGE', () => this.core.client.xrevrange(KEYS.cloudRefused(link), '+', '-', 'COUNT', 1));
    return rows[0]?.[0] ?? null;
  }

  /** Records a request to send the parked messages in `range` again; returns its id. */
  async request(link: string, range: SeqRange, who: string): Promise<string> {
    const id = await redisCall('XADD', () =>
      this.core.client.xadd(
        KEYS.cloudResends(link),
        'MAXLEN',
        '~',
        REQUESTS_MAX,
        '*',
        'fromSeq',
        range.fromSeq === null ? '' : String(range.fromSeq),
        'toSeq',
        range.toSeq === null ? '' : String(range.toSeq),
        'who',
        who,
        'at',
        String(Date.now()),
      ),
    );
    return id!;
  }

  /** The oldest request the link has not finished, with its progress when it began it (one round trip). */
  async nextRequest(link: string): Promise<{ readonly request: ResendRequest; readonly progress: Record<string, string> } | undefined> {
    const done = (await redisCall('GET', () => this.core.client.get(KEYS.cloudResendsDone(link)))) ?? '0-0';
    const rows = await redisCall('XRANGE', () => this.core.client.xrange(KEYS.cloudResends(link), `(${done}`, '+', 'COUNT', 1));
    const row = rows[0];
    if (!row) return undefined;
    const request = requestOf(row[0], fieldsOf(row[1]));
    const progress = await redisCall('HGETALL', () => this.core.client.hgetall(KEYS.cloudResend(link, request.id)));
    return { request, progress };
  }

  /** A request begun: its progress recorded, stopping at `until` (resumed from `progress` when it had begun before a restart). */
  async begin(link: string, request: ResendRequest, progress: Record<string, string>, until: string | null): Promise<ResendProgress> {
    if (progress.state === 'running') return { request, until: progress.until || null, cursor: progress.cursor ?? '0-0' };
    await redisCall('HSET', () =>
      this.core.client.hset(KEYS.cloudResend(link, request.id), {
        state: 'running',
        fromSeq: request.fromSeq ?? '',
        toSeq: request.toSeq ?? '',
        who: request.who,
        requestedAt: String(request.requestedAt),
        until: until ?? '',
        cursor: '0-0',
        resent: '0',
        refused: '0',
      }),
    );
    return { request, until, cursor: '0-0' };
  }

  /**
   * One step, at once (cloud_resend_step): what the cloud took deleted from the parked stream and counted by what was
   * deleted, what it refused again counted, the cursor moved from `expectedCursor`; when the stored cursor is elsewhere
   * (a commit replayed after its reply was lost) nothing is written. Returns the request's cursor after it.
   */
  async step(link: string, request: string, expectedCursor: string, s: ResendStep): Promise<string> {
    const [, cursor] = await this.core.fcall('cloud_resend_step', {
      link,
      request,
      expectedCursor,
      cursor: s.cursor,
      taken: s.taken,
      refusedAgain: s.refusedAgain,
      lastRefusal: s.lastRefusal ?? '',
    });
    return cursor;
  }

  /** A request's cursor as stored ('0-0' when it has none). */
  async cursor(link: string, request: string): Promise<string> {
    return (await redisCall('HGET', () => this.core.client.hget(KEYS.cloudResend(link, request), 'cursor'))) ?? '0-0';
  }

  /** Who asked to cancel a request, or null. */
  cancelledBy(link: string, request: string): Promise<string | null> {
    return redisCall('HGET', () => this.core.client.hget(KEYS.cloudResend(link, request), 'cancel'));
  }

  /**
   * Asks the link to end a request at its next step (it checks `cancel`); the caller checked it has not ended. Written
   * with the request's state and the link's cursor of requests read at once: when the request ended and its outcome
   * expired since the caller's check, the hash this made (only `cancel`, no TTL) is deleted again. A request not begun
   * keeps its `cancel` without a TTL, as a running one keeps its progress: `finish` gives it the outcome's day.
   */
  async cancel(link: string, request: string, who: string): Promise<void> {
    const key = KEYS.cloudResend(link, request);
    const r = await redisCall('MULTI', () => this.core.client.multi().hset(key, 'cancel', who).hget(key, 'state').get(KEYS.cloudResendsDone(link)).exec());
    const state = r?.[1]?.[1] as string | null | undefined;
    const done = r?.[2]?.[1] as string | null | undefined;
    // An ended request's hash always has its state (finish writes it); none, past the link's cursor: it expired.
    if (!state && done && compareIds(done, request) >= 0) await redisCall('DEL', () => this.core.client.del(key));
  }

  /** A slice failed at the request's cursor: counted (reset when the cursor moves) with why; returns how many times in a row. */
  async failed(link: string, request: string, why: string): Promise<number> {
    const key = KEYS.cloudResend(link, request);
    const r = await redisCall('MULTI', () => this.core.client.multi().hincrby(key, 'failures', 1).hset(key, 'lastError', why).exec());
    return Number(r?.[0]?.[1] ?? 1);
  }

  /**
   * A request ended (done, failed, cancelled; `lastError` says why when not done): its outcome kept a day, the link's
   * cursor of requests past it, at once. What a failed or cancelled one had not sent stays parked.
   */
  async finish(link: string, request: string, state: 'done' | 'failed' | 'cancelled' = 'done', lastError?: string): Promise<void> {
    const key = KEYS.cloudResend(link, request);
    const tx = this.core.client.multi().hset(key, 'state', state, 'finishedAt', String(Date.now()));
    if (lastError !== undefined) tx.hset(key, 'lastError', lastError);
    await redisCall('MULTI', () => tx.expire(key, OUTCOME_TTL_S).set(KEYS.cloudResendsDone(link), request).exec());
  }

  /** Where a request stands, or undefined when there is no such request (or its outcome expired). */
  async outcome(link: string, id: string): Promise<ResendOutcome | undefined> {
    const [progress, done, rows] = await Promise.all([
      redisCall('HGETALL', () => this.core.client.hgetall(KEYS.cloudResend(link, id))),
      redisCall('GET', () => this.core.client.get(KEYS.cloudResendsDone(link))),
      redisCall('XRANGE', () => this.core.client.xrange(KEYS.cloudResends(link), id, id)),
    ]);
    // A request not begun has no state (a cancel asked of it may be there alone).
    if (progress.state) {
      return {
        id,
        state: progress.state as ResendState,
        fromSeq: seqField(progress.fromSeq),
        toSeq: seqField(progress.toSeq),
        who: progress.who ?? '',
        requestedAt: Number(progress.requestedAt ?? 0),
        resent: Number(progress.resent ?? 0),
        refused: Number(progress.refused ?? 0),
        finishedAt: progress.finishedAt ? Number(progress.finishedAt) : null,
        lastError: progress.lastError || null,
      };
    }
    const row = rows[0];
    if (!row || (done !== null && compareIds(done, id) >= 0)) return undefined;
    return { ...requestOf(id, fieldsOf(row[1])), state: 'requested', resent: 0, refused: 0, finishedAt: null, lastError: null };
  }
}
