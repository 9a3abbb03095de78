/**
 * A cloud link's HTTP side: one request (Node's fetch) per batch, its body
 *
 *   {"site": "s1", "link": "main", "messages": [{"kind": "data", "seq": 41, …}, {"kind": "alarm", "seq": 42, …}]}
 *
 * in seq order, and acknowledged by a 2xx answer only. No answer within
 * timeoutMs, a refused connection or a status that says the receiver cannot
 * take anything now (401, 403, 404, 408, 429, 5xx, …) fails the whole batch:
 * the link sends it again, the same messages with the same seqs, after its
 * backoff; a receiver drops seqs it has seen.
 *
 * A status that is about the content (400, 413, 415, 422) may be one message
 * the receiver will never take, which sent again would stall the link for
 * good: the batch is split in halves, sent in order, down to the messages
 * refused alone. Those are refusals (parked and counted by the link, as an
 * MQTT 5 broker's are) only when the receiver took other messages of the
 * same batch; a batch refused whole, message by message, is the receiver's
 * problem (a schema it no longer takes), not the messages', and fails as
 * above, so that its backlog waits instead of being parked; only the same
 * batch refused whole WHOLE_REFUSALS_PARKED times in a row is parked (a quiet
 * site's batch may be that one message alone).
 *
 * Header secrets come from environment variables (headersEnv), read at each
 * connect, never logged.
 */
import type { HttpLinkConfig } from '../../runtime/config/cloud.js';
import { errorMessage } from '../../runtime/errors.js';
import type { Logger } from '../../runtime/logger.js';
import {
  CloudContentRefusedError,
  CloudOutageError,
  CloudRefusedError,
  type DeliverOptions,
  type Outgoing,
  type Refusal,
  type UplinkTransport,
} from './transport.js';

/** The body of one batch (the payloads are JSON objects already: `kind` goes first). */
export function batchBody(site: string, link: string, batch: readonly Outgoing[]): string {
  const messages = batch.map((m) => `{"kind":"${m.kind}",${m.payload.slice(1)}`);
  return `{"site":${JSON.stringify(site)},"link":${JSON.stringify(link)},"messages":[${messages.join(',')}]}`;
}

/** Statuses about a request's content: the batch is split to find the messages refused. */
const CONTENT_REFUSED: ReadonlySet<number> = new Set([400, 413, 415, 422]);
/** A batch refused whole, message by message, this many times in a row is parked. */
export const WHOLE_REFUSALS_PARKED = 10;

export class HttpTransport implements UplinkTransport {
  readonly provenByDelivery = true;
  readonly splitsRefusals = true;
  private headers: Record<string, string> = {};
  /** The live batch last refused whole (its first message) and how many times in a row (a resend's slices leave it). */
  private wholeRefusals = { first: '', times: 0 };

  constructor(
    private readonly cfg: HttpLinkConfig,
    private readonly site: string,
    private readonly log: Logger,
  ) {}

  async connect(): Promise<void> {
    const headers: Record<string, string> = { 'content-type': 'application/json', ...this.cfg.headers };
    for (const [name, env] of Object.entries(this.cfg.headersEnv)) {
      const v = process.env[env];
      if (v === undefined) this.log.warn({ header: name, env }, 'cloud link: the variable of a header is not set; the header is left out');
      else headers[name] = v;
    }
    this.headers = headers;
  }

  watch(): () => void {
    return () => undefined;
  }

  async deliver(batch: readonly Outgoing[], _lost?: () => boolean, options?: DeliverOptions): Promise<{ readonly acked: Promise<readonly Refusal[]> }> {
    const refusals: Refusal[] = [];
    const taken = await this.send(batch, 0, refusals);
    // Parked messages sent again: each refusal is its answer; the count of a live batch refused whole is not touched.
    if (options?.parked) return { acked: Promise.resolve(refusals) };
    if (refusals.length > 0 && taken === 0) {
      // The same batch refused whole WHOLE_REFUSALS_PARKED times in a row is parked after all: a site so quiet that
      // a batch is the one bad message would otherwise wait for ever.
      const first = refusals[0]!.payload;
      this.wholeRefusals = this.wholeRefusals.first === first ? { first, times: this.wholeRefusals.times + 1 } : { first, times: 1 };
      if (this.wholeRefusals.times < WHOLE_REFUSALS_PARKED) {
        throw new CloudContentRefusedError(
          `${this.cfg.url} refused every message of a batch (${refusals[0]!.reason}, ${this.wholeRefusals.times} time(s)); it is sent again after the backoff`,
          refusals,
        );
      }
    }
    this.wholeRefusals = { first: '', times: 0 };
    return { acked: Promise.resolve(refusals) };
  }

  /** Posts `batch` (at `offset` of the whole), split where its content is refused; the number of messages taken. */
  private async send(batch: readonly Outgoing[], offset: number, refusals: Refusal[]): Promise<number> {
    if (batch.length === 0) return 0;
    let res: Response;
    try {
      res = await fetch(this.cfg.url, {
        method: this.cfg.method,
        headers: this.headers,
        body: batchBody(this.site, this.cfg.id, batch),
        signal: AbortSignal.timeout(this.cfg.timeoutMs),
      });
      // The body is read (and dropped) so that the connection is kept alive for the next batch.
      await res.arrayBuffer();
    } catch (e) {
      throw new CloudOutageError(`${this.cfg.url}: ${errorMessage(e)}`);
    }
    if (res.status >= 200 && res.status <= 299) return batch.length;
    if (!CONTENT_REFUSED.has(res.status)) throw new CloudRefusedError(`${this.cfg.url} answered ${res.status} ${res.statusText}`);
    if (batch.length === 1) {
      refusals.push({ index: offset, topic: this.cfg.url, payload: batch[0]!.payload, reasonCode: res.status, reason: `HTTP ${res.status}` });
      return 0;
    }
    const half = Math.ceil(batch.length / 2);
    const first = await this.send(batch.slice(0, half), offset, refusals);
    return first + (await this.send(batch.slice(half), offset + half, refusals));
  }

  async close(): Promise<void> {}
}
