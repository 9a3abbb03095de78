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
 * stream in the same MULTI as its count (`unparked` in `cloud:{link}:stats`),
 * so that `refused − unparked` stays the number parked (below PARKED_MAX); one
 * refused again stays where it is and is counted in `refusedAgain`.
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

  /** One step: what the cloud took deleted from the parked stream and counted, what it refused again counted, the cursor moved, at once. */
  async step(link: string, request: string, s: ResendStep): Promise<void> {
    const key = KEYS.cloudResend(link, request);
    const tx = this.core.client.multi();
    if (s.taken.length > 0)
      tx.xdel(KEYS.cloudRefused(link), ...s.taken)
        .hincrby(KEYS.cloudStats(link), 'unparked', s.taken.length)
        .hincrby(key, 'resent', s.taken.length);
    if (s.refusedAgain > 0) tx.hincrby(KEYS.cloudStats(link), 'refusedAgain', s.refusedAgain).hincrby(key, 'refused', s.refusedAgain);
    if (s.lastRefusal !== undefined) tx.hset(KEYS.cloudStats(link), 'lastRefusal', s.lastRefusal);
    tx.hset(key, 'cursor', s.cursor);
    await redisCall('MULTI', () => tx.exec());
  }

  /** A request finished: its outcome kept a day, the link's cursor of requests past it, at once. */
  async finish(link: string, request: string): Promise<void> {
    const key = KEYS.cloudResend(link, request);
    await redisCall('MULTI', () =>
      this.core.client
        .multi()
        .hset(key, 'state', 'done', 'finishedAt', String(Date.now()))
        .expire(key, OUTCOME_TTL_S)
        .set(KEYS.cloudResendsDone(link), request)
        .exec(),
    );
  }

  /** Where a request stands, or undefined when there is no such request (or its outcome expired). */
  async outcome(link: string, id: string): Promise<ResendOutcome | undefined> {
    const [progress, done, rows] = await Promise.all([
      redisCall('HGETALL', () => this.core.client.hgetall(KEYS.cloudResend(link, id))),
      redisCall('GET', () => this.core.client.get(KEYS.cloudResendsDone(link))),
      redisCall('XRANGE', () => this.core.client.xrange(KEYS.cloudResends(link), id, id)),
    ]);
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
      };
    }
    const row = rows[0];
    if (!row || (done !== null && compareIds(done, id) >= 0)) return undefined;
    return { ...requestOf(id, fieldsOf(row[1])), state: 'requested', resent: 0, refused: 0, finishedAt: null };
  }
}
