/**
 * An open-loop HTTP/1.1 load generator for the REST benchmark: requests leave at
 * a fixed overall rate over keep-alive connections, one request in flight per
 * connection, and latency is taken from the moment a request is written to the
 * moment its whole response has arrived (latency from the intended send time is
 * reported too, so that a client falling behind cannot hide the server's
 * stalls). It parses no more of a response than its length and sleeps between
 * its 1 ms ticks, which keeps the measuring process light: it shares the two
 * cores with the server it measures.
 */
import { connect, type Socket } from 'node:net';

export interface LoadResult {
  readonly sent: number;
  readonly completed: number;
  readonly non2xx: number;
  readonly errors: number;
  /** Milliseconds, from write to full response. */
  readonly latencies: Float64Array;
  /** Milliseconds, from the intended send time to full response. */
  readonly intended: Float64Array;
  readonly seconds: number;
}

interface Conn {
  readonly socket: Socket;
  busy: boolean;
  buf: Buffer;
  sentAt: number;
  dueAt: number;
}

const HEADER_END = Buffer.from('\r\n\r\n');
const EMPTY = Buffer.alloc(0);
const CONTENT_LENGTH = Buffer.from('content-length:');

/**
 * The Content-Length of a response whose header ends at `end`, read from the
 * bytes (case-insensitive), 0 without one. No string is made per response: the
 * generator's own garbage collection would otherwise show in the latencies.
 */
function contentLength(buf: Buffer, end: number): number {
  const n = CONTENT_LENGTH.length;
  for (let i = 0; i + n <= end; i++) {
    let k = 0;
    while (k < n && (buf[i + k]! | 0x20) === (CONTENT_LENGTH[k]! | 0x20)) k++;
    if (k < n) continue;
    let j = i + n;
    while (buf[j] === 0x20) j++;
    let v = 0;
    while (j < end && buf[j]! >= 0x30 && buf[j]! <= 0x39) v = v * 10 + buf[j++]! - 0x30;
    return v;
  }
  return 0;
}
export async function httpLoad(opts: {
  host: string;
  port: number;
  path: string;
  headers: Record<string, string>;
  rate: number;
  seconds: number;
  connections: number;
}): Promise<LoadResult> {
  const head = [`GET ${opts.path} HTTP/1.1`, `Host: ${opts.host}:${opts.port}`, ...Object.entries(opts.headers).map(([k, v]) => `${k}: ${v}`), '', ''].join(
    '\r\n',
  );
  const request = Buffer.from(head);
  const max = Math.ceil(opts.rate * opts.seconds) + 16;
  const latencies = new Float64Array(max);
  const intended = new Float64Array(max);
  let completed = 0;
  let non2xx = 0;
  let errors = 0;
  const conns: Conn[] = await Promise.all(
    Array.from(
      { length: opts.connections },
      () =>
        new Promise<Conn>((resolve, reject) => {
          const socket = connect(opts.port, opts.host, () => resolve(c));
          socket.setNoDelay(true);
          const c: Conn = { socket, busy: false, buf: Buffer.alloc(0), sentAt: 0, dueAt: 0 };
          socket.on('error', (e) => {
            errors++;
            reject(e);
          });
          socket.on('data', (chunk: Buffer) => {
            c.buf = c.buf.length ? Buffer.concat([c.buf, chunk]) : chunk;
            const end = c.buf.indexOf(HEADER_END);
            if (end < 0) return;
            const total = end + 4 + contentLength(c.buf, end);
            if (c.buf.length < total) return;
            const now = performance.now();
            if (completed < max) {
              latencies[completed] = now - c.sentAt;
              intended[completed] = now - c.dueAt;
            }
            completed++;
            if (c.buf[9] !== 0x32) non2xx++; // "HTTP/1.1 2xx"
            c.buf = c.buf.length === total ? EMPTY : c.buf.subarray(total);
            c.busy = false;
          });
        }),
    ),
  );
  const start = performance.now();
  const interval = 1000 / opts.rate;
  let sent = 0;
  const end = start + opts.seconds * 1000;
  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = performance.now();
      // Every request whose time has come leaves on a free connection; late ones keep their intended time.
      while (sent < max && start + sent * interval <= Math.min(now, end)) {
        const c = conns.find((x) => !x.busy);
        if (!c) break;
        c.busy = true;
        c.dueAt = start + sent * interval;
        c.sentAt = performance.now();
        c.socket.write(request);
        sent++;
      }
      if (now < end) setTimeout(tick, 1);
      else resolve();
    };
    tick();
  });
  const drainUntil = performance.now() + 2_000;
  while (conns.some((c) => c.busy) && performance.now() < drainUntil) await new Promise((r) => setTimeout(r, 5));
  for (const c of conns) c.socket.destroy();
  const n = Math.min(completed, max);
  return { sent, completed, non2xx, errors, latencies: latencies.slice(0, n).sort(), intended: intended.slice(0, n).sort(), seconds: opts.seconds };
}
