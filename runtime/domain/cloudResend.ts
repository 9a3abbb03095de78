/**
 * Resending a cloud link's parked messages (actors/cloud/resend.ts does it):
 * which seqs a request selects (the API's body or the CLI's `FROM-TO`),
 * checked once here, so that the gateway and the CLI refuse
 * the same bad ranges with the same words. Pure: no Redis.
 */
import { VoltageError } from '../errors.js';

/** The seqs a resend selects, both ends included; null: open on that side (both null: every parked message). */
export interface SeqRange {
  readonly fromSeq: number | null;
  readonly toSeq: number | null;
}

export const ALL_SEQS: SeqRange = { fromSeq: null, toSeq: null };

/**
 * Where a resend request stands: taken by the link once it reaches it, then done; or failed (the same slice failed
 * RESEND_FAILURES_MAX times: `lastError`), or cancelled by an operator; what it had not sent stays parked. The outcome
 * of an ended one is kept a day.
 */
export type ResendState = 'requested' | 'running' | 'done' | 'failed' | 'cancelled';

/** The states a request ends in. */
export const RESEND_ENDED: ReadonlySet<ResendState> = new Set(['done', 'failed', 'cancelled']);

/** A slice of a resend that fails this many times in a row (not refused message by message: a 500, a DISCONNECT) ends its request `failed`. */
export const RESEND_FAILURES_MAX = 3;

export interface ResendOutcome {
  readonly id: string;
  readonly state: ResendState;
  readonly fromSeq: number | null;
  readonly toSeq: number | null;
  readonly who: string;
  readonly requestedAt: number;
  /** Parked messages the cloud took this time: removed from the parked stream. */
  readonly resent: number;
  /** Parked messages the cloud refused again: left parked. */
  readonly refused: number;
  readonly finishedAt: number | null;
  /** Why the last slice failed (failed), or who cancelled it (cancelled); null otherwise. */
  readonly lastError: string | null;
}

/** A range that cannot select anything sensible (code BAD_RANGE): the message says why. */
export class SeqRangeError extends VoltageError {
  constructor(message: string) {
    super('api', 'BAD_RANGE', message);
    this.name = 'SeqRangeError';
  }
}

/** A range from its two ends (null: open), checked; throws SeqRangeError. */
export function seqRange(fromSeq: number | null, toSeq: number | null): SeqRange {
  for (const [v, name] of [
    [fromSeq, 'fromSeq'],
    [toSeq, 'toSeq'],
  ] as const)
    if (v !== null && (!Number.isSafeInteger(v) || v < 1)) throw new SeqRangeError(`${name} must be a whole number from 1 (a message's seq), not ${v}`);
  if (fromSeq !== null && toSeq !== null && fromSeq > toSeq) throw new SeqRangeError(`fromSeq ${fromSeq} is after toSeq ${toSeq}`);
  return { fromSeq, toSeq };
}

/** The CLI's `FROM-TO`, `FROM-` or `-TO` (or one seq, `N`); throws SeqRangeError. */
export function seqRangeOfText(text: string): SeqRange {
  const m = /^(\d*)(-?)(\d*)$/.exec(text.trim());
  if (!m || (m[1] === '' && m[3] === '') || (m[2] === '' && m[3] !== '')) throw new SeqRangeError(`'${text}': expected FROM-TO, FROM-, -TO or one seq`);
  const num = (s: string) => (s === '' ? null : Number(s));
  const from = num(m[1]!);
  return m[2] === '' ? seqRange(from, from) : seqRange(from, num(m[3]!));
}

/** Whether a parked message's seq (as parked: text, '' when unknown) is in the range; an unknown seq only in an open one. */
export function inSeqRange(seq: string, r: SeqRange): boolean {
  if (r.fromSeq === null && r.toSeq === null) return true;
  if (!/^\d+$/.test(seq)) return false;
  const n = Number(seq);
  return (r.fromSeq === null || n >= r.fromSeq) && (r.toSeq === null || n <= r.toSeq);
}

/** How a range reads in a log line or the CLI. */
export function seqRangeText(r: SeqRange): string {
  if (r.fromSeq === null && r.toSeq === null) return 'every parked message';
  return `seq ${r.fromSeq ?? 1}–${r.toSeq ?? '…'}`;
}
