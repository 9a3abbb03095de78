/**
 * The cloud benchmark's measuring subscriber: MQTT 3.1.1 over a plain socket,
 * one subscription at QoS 1, each PUBLISH handed over as the bytes of its
 * payload and PUBACKed, the PUBACKs of one socket read written at once.
 *
 * Why not mqtt.js: at the drain's rate the subscriber (mqtt.js's parser,
 * a PUBACK written per message, JSON.parse of each payload) took a share of
 * the two cores comparable to the link it measures. It speaks only what the
 * benchmark needs: CONNECT (clean session, no keepalive), SUBSCRIBE, PUBLISH
 * (QoS 0 and 1) and PUBACK; anything else ends it with an error.
 */
import { connect, type Socket } from 'node:net';

export interface RawSubscriber {
  close(): void;
}

/** MQTT's variable byte integer (a remaining length). */
export function remainingLength(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return out;
}

function packet(header: number, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from([header, ...remainingLength(body.length)]), body]);
}

function str(s: string): Buffer {
  const b = Buffer.from(s);
  return Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b]);
}

/** Connects, subscribes to `filter` at QoS 1 and calls `onPayload(buf, start, end)` for each message. */
export function rawSubscriber(
  port: number,
  clientId: string,
  filter: string,
  onPayload: (buf: Buffer, start: number, end: number) => void,
): Promise<RawSubscriber> {
  return new Promise((resolve, reject) => {
    const sock: Socket = connect(port, '127.0.0.1');
    sock.setNoDelay(true);
    let pending: Buffer | undefined;
    let subscribed = false;
    const fail = (e: Error) => {
      sock.destroy();
      if (!subscribed) reject(e);
      else throw e;
    };
    sock.once('error', (e) => (subscribed ? undefined : reject(e)));
    sock.once('connect', () => {
      // CONNECT: protocol "MQTT" level 4, clean session, keepalive 0 (none: the benchmark's outage sends nothing for a minute).
      sock.write(packet(0x10, Buffer.concat([str('MQTT'), Buffer.from([4, 0x02, 0, 0]), str(clientId)])));
      sock.write(packet(0x82, Buffer.concat([Buffer.from([0, 1]), str(filter), Buffer.from([1])])));
    });
    sock.on('data', (chunk: Buffer) => {
      const buf = pending ? Buffer.concat([pending, chunk]) : chunk;
      pending = undefined;
      const acks: number[] = [];
      let at = 0;
      while (at < buf.length) {
        // Fixed header and remaining length; an incomplete packet waits for the next read.
        let len = 0;
        let mul = 1;
        let p = at + 1;
        let complete = false;
        while (p < buf.length && p < at + 5) {
          const b = buf[p++]!;
          len += (b & 0x7f) * mul;
          mul *= 128;
          if ((b & 0x80) === 0) {
            complete = true;
            break;
          }
        }
        if (!complete || p + len > buf.length) break;
        const type = buf[at]! >> 4;
        const end = p + len;
        if (type === 3) {
          const qos = (buf[at]! >> 1) & 3;
          const topicLen = (buf[p]! << 8) | buf[p + 1]!;
          let q = p + 2 + topicLen;
          if (qos > 0) {
            acks.push(0x40, 2, buf[q]!, buf[q + 1]!);
            q += 2;
          }
          onPayload(buf, q, end);
        } else if (type === 2) {
          if (buf[p + 1] !== 0) return fail(new Error(`the broker refused the subscriber's connection (code ${buf[p + 1]})`));
        } else if (type === 9) {
          if (buf[p + 2]! >= 0x80) return fail(new Error('the broker refused the subscription'));
          subscribed = true;
          resolve({ close: () => sock.destroy() });
        } else return fail(new Error(`unexpected MQTT packet type ${type}`));
        at = end;
      }
      if (at < buf.length) pending = buf.subarray(at);
      if (acks.length > 0) sock.write(Buffer.from(acks));
    });
  });
}

/** The integer after `"key":` at or after `from` in a JSON payload (no JSON.parse); NaN when absent. */
export function intField(buf: Buffer, from: number, end: number, key: Buffer): number {
  const i = buf.indexOf(key, from);
  if (i < 0 || i >= end) return Number.NaN;
  let n = 0;
  let p = i + key.length;
  for (; p < end; p++) {
    const d = buf[p]! - 48;
    if (d < 0 || d > 9) break;
    n = n * 10 + d;
  }
  return p === i + key.length ? Number.NaN : n;
}

/** The number of members of the flat object after `"values":{` (its commas, plus one unless empty). */
export function valueCount(buf: Buffer, from: number, end: number, key: Buffer): number {
  let p = buf.indexOf(key, from);
  if (p < 0 || p >= end) return 0;
  p += key.length;
  if (buf[p] === 0x7d) return 0;
  let n = 1;
  for (; p < end && buf[p] !== 0x7d; p++) if (buf[p] === 0x2c) n += 1;
  return n;
}
