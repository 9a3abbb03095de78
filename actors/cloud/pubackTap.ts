/**
 * PUBACKs answered without mqtt.js's per-packet path.
 *
 * A link draining its backlog receives a PUBACK per message (17k a second);
 * mqtt.js parses each into an object (mqtt-packet, with a debug call per
 * step), queues it, handles it on a `nextTick` of its own, emits
 * `packetreceive` and moves its keepalive timer: most of what is left of the
 * link's cost once publishing is one write per run (mqttBatch.ts). The tap
 * sits between the connection and mqtt.js's parser, reads the packets'
 * fixed headers, and answers a plain PUBACK (MQTT 3.1.1, or 5 with no reason
 * code: success) for a publish mqtt.js holds as mqtt.js does on success
 * (`_removeOutgoingAndStoreMessage`: the callback, the packet id freed, the
 * store processing resumed; `outgoingEmpty` while disconnecting). Every
 * other packet (CONNACK, PINGRESP, SUBACK, a downlink PUBLISH, a PUBACK with
 * a reason code or for an id mqtt.js does not hold as a publish) goes on to
 * mqtt.js, whole and in order among the packets it gets.
 *
 * It must never lose or split a packet: it is installed before the
 * connection delivers a byte, holds an incomplete packet until its end
 * arrives, and on anything it cannot read (a malformed length) hands every
 * byte from there on to mqtt.js untouched. A lost connection is mqtt.js's, as
 * before: the callbacks still in `outgoing` fail with "Connection closed".
 *
 * Relies on mqtt.js 5's internals (`outgoing`, `_removeOutgoingAndStoreMessage`,
 * the stream piped into its parser) and on Node's readable state; when they
 * are not as expected the tap is not installed and mqtt.js reads everything.
 */
import type { MqttClient, PacketCallback } from 'mqtt';

interface TapClient {
  stream: NodeJS.ReadableStream & { _readableState?: { pipes?: unknown } };
  outgoing: Record<number, { cmd: string; cb: PacketCallback } | undefined>;
  disconnecting: boolean;
  _removeOutgoingAndStoreMessage(messageId: number, cb: PacketCallback): void;
  emit(event: 'outgoingEmpty'): boolean;
}

const PUBACK = 0x40;

/** Where the next packet's remaining length ends: [header bytes, remaining length], undefined when incomplete, null when malformed. */
function packetHead(buf: Buffer, at: number): [number, number] | undefined | null {
  let len = 0;
  let mul = 1;
  for (let i = 1; i <= 4; i++) {
    if (at + i >= buf.length) return undefined;
    const b = buf[at + i]!;
    len += (b & 0x7f) * mul;
    if ((b & 0x80) === 0) return [1 + i, len];
    mul *= 128;
  }
  return null;
}

/**
 * Installs the tap on a client just made by `connect` (no byte read yet).
 * Returns false, leaving the client as it was, when its internals are not
 * those this module knows.
 */
export function tapPubacks(client: MqttClient): boolean {
  const c = client as unknown as Partial<TapClient>;
  const stream = c.stream;
  const pipes = stream?._readableState?.pipes;
  if (
    !stream ||
    !Array.isArray(pipes) ||
    pipes.length !== 1 ||
    typeof (pipes[0] as { write?: unknown }).write !== 'function' ||
    typeof c._removeOutgoingAndStoreMessage !== 'function' ||
    typeof c.outgoing !== 'object'
  )
    return false;
  const parser = pipes[0] as NodeJS.WritableStream;
  const tc = c as TapClient;
  let held: Buffer | undefined;
  let raw = false;
  // What `pipe` did: a parser that is behind (a burst of downlink publishes) pauses the connection until it drains.
  let waiting = false;
  const resume = (): void => {
    waiting = false;
    stream.resume();
  };
  const toParser = (bytes: Buffer): void => {
    if (!parser.write(bytes) && !waiting) {
      waiting = true;
      stream.pause();
      parser.once('drain', resume);
    }
  };
  stream.unpipe(parser);
  stream.on('data', (chunk: Buffer) => {
    if (raw || !Buffer.isBuffer(chunk)) {
      raw = true;
      if (held) toParser(held);
      held = undefined;
      toParser(chunk);
      return;
    }
    const buf = held ? Buffer.concat([held, chunk]) : chunk;
    held = undefined;
    // Bytes from `from` up to `at` are packets mqtt.js gets, written in one piece before a PUBACK the tap answers.
    let from = 0;
    let at = 0;
    while (at < buf.length) {
      const head = packetHead(buf, at);
      if (head === null) {
        raw = true;
        break;
      }
      if (head === undefined || at + head[0] + head[1] > buf.length) break;
      const [headBytes, length] = head;
      const end = at + headBytes + length;
      if (buf[at] === PUBACK && length === 2) {
        const id = (buf[at + 2]! << 8) | buf[at + 3]!;
        const pending = tc.outgoing[id];
        if (pending?.cmd === 'publish') {
          if (at > from) toParser(buf.subarray(from, at));
          from = end;
          tc._removeOutgoingAndStoreMessage(id, pending.cb);
          if (tc.disconnecting && Object.keys(tc.outgoing).length === 0) tc.emit('outgoingEmpty');
        }
      }
      at = end;
    }
    if (raw) {
      if (from < buf.length) toParser(buf.subarray(from));
      return;
    }
    if (at > from) toParser(buf.subarray(from, at));
    if (at < buf.length) held = buf.subarray(at);
  });
  stream.resume();
  return true;
}
