/**
 * A cloud link's HTTP side: one request (Node's fetch) per batch, its body
 *
 *   {"site": "s1", "link": "main", "messages": [{"kind": "data", "seq": 41, …}, {"kind": "alarm", "seq": 42, …}]}
 *
 * in seq order, and acknowledged by a 2xx answer only. Anything else (no
 * answer within timeoutMs, a refused connection, any other status) fails the
 * whole batch: the link sends it again, the same messages with the same seqs,
 * after its backoff; a receiver drops seqs it has seen. Header secrets come
 * from environment variables (headersEnv), read at each connect, never logged.
 */
import type { HttpLinkConfig } from '../../runtime/config/cloud.js';
import { errorMessage } from '../../runtime/errors.js';
import type { Logger } from '../../runtime/logger.js';
import { CloudOutageError, CloudRefusedError, type Outgoing, type Refusal, type UplinkTransport } from './transport.js';

/** The body of one batch (the payloads are JSON objects already: `kind` goes first). */
export function batchBody(site: string, link: string, batch: readonly Outgoing[]): string {
  const messages = batch.map((m) => `{"kind":"${m.kind}",${m.payload.slice(1)}`);
  return `{"site":${JSON.stringify(site)},"link":${JSON.stringify(link)},"messages":[${messages.join(',')}]}`;
}

export class HttpTransport implements UplinkTransport {
  readonly provenByDelivery = true;
  private headers: Record<string, string> = {};

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

  async deliver(batch: readonly Outgoing[]): Promise<{ readonly acked: Promise<readonly Refusal[]> }> {
    if (batch.length === 0) return { acked: Promise.resolve([]) };
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
    if (res.status < 200 || res.status > 299) throw new CloudRefusedError(`${this.cfg.url} answered ${res.status} ${res.statusText}`);
    return { acked: Promise.resolve([]) };
  }

  async close(): Promise<void> {}
}
