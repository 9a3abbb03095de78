/**
 * Messages the cloud refused one by one (MQTT 5 PUBACK reason code ≥ 0x80:
 * its ACL, a topic or payload it will not take): parked, counted and logged,
 * so that one refused topic never holds back the rest of the link.
 *
 * A refusal is the broker's answer about that message. Sending it again in
 * place would either reorder the link (later messages are already out) or
 * stall it for every batch the refused topic has a message in; so the link
 * acknowledges the message's entry with the others and keeps the message in
 * `cloud:{link}:refused` (the newest PARKED_MAX, runtime/redis/cloud.ts, with its topic, reason code,
 * seq and payload, in the same MULTI as the XACK, so the count is exact), for
 * an operator to read and, once the broker takes it, have the link send again
 * (resend.ts).
 */
import type { Logger } from '../../runtime/logger.js';
import type { ParkedRefusals } from '../../runtime/redis/cloud.js';
import type { Refusal } from './transport.js';

/** A topic and reason code is logged at most once in this time, with the count since. */
export const REFUSAL_LOG_MS = 60_000;
/** Topics and codes the log remembers; past it, it forgets them all (and logs each once more). */
const LOG_KEYS_MAX = 1_000;

/** MQTT 5 §3.4.2.1, the reason codes a PUBACK may carry. */
const REASONS: Readonly<Record<number, string>> = {
  128: 'unspecified error',
  131: 'implementation specific error',
  135: 'not authorized',
  144: 'topic name invalid',
  145: 'packet identifier in use',
  151: 'quota exceeded',
  153: 'payload format invalid',
};

export function reasonText(code: number): string {
  return `0x${code.toString(16).padStart(2, '0')} ${REASONS[code] ?? 'refused'}`;
}

/** The code as the parked entry keeps it: MQTT's in hex, or the transport's own name (`HTTP 422`). */
const codeOf = (r: Refusal) => r.reason ?? `0x${r.reasonCode.toString(16)}`;

/** What `voltage status` shows of the last refusal. */
export function refusalSummary(r: Refusal): string {
  return `${r.reason ?? reasonText(r.reasonCode)}: ${r.topic}`;
}

/** The refusals as they are parked (bounded), counted and the last one named (runtime/redis/cloud.ts); undefined when there are none. */
export function parked(refusals: readonly Refusal[]): ParkedRefusals | undefined {
  if (refusals.length === 0) return undefined;
  return {
    messages: refusals.map((r) => ({ seq: /^\{"seq":(\d+)/.exec(r.payload)?.[1] ?? '', topic: r.topic, reason: codeOf(r), payload: r.payload })),
    last: refusalSummary(refusals[refusals.length - 1]!),
  };
}

/** The warning log of refusals, at most one line per topic and reason code per REFUSAL_LOG_MS. */
export class RefusalLog {
  private readonly seen = new Map<string, { at: number; since: number }>();

  constructor(
    private readonly log: Logger,
    private readonly everyMs = REFUSAL_LOG_MS,
  ) {}

  note(refusals: readonly Refusal[], now = Date.now()): void {
    for (const r of refusals) {
      const key = `${r.reasonCode} ${r.topic}`;
      const s = this.seen.get(key);
      if (s && now - s.at < this.everyMs) {
        s.since += 1;
        continue;
      }
      if (!s && this.seen.size >= LOG_KEYS_MAX) this.seen.clear();
      this.log.warn(
        { topic: r.topic, reasonCode: r.reasonCode, reason: r.reason ?? reasonText(r.reasonCode), refused: (s?.since ?? 0) + 1, sinceMs: s ? now - s.at : 0 },
        'cloud link: the broker refused a message; it is parked in the link’s refused stream and counted',
      );
      this.seen.set(key, { at: now, since: 0 });
    }
  }
}
