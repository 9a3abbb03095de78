/**
 * A batch of QoS 1 PUBLISH packets encoded into one Buffer, for one socket
 * write: mqtt-packet writes each packet in six pieces (header, length, topic
 * length, topic, packet id, payload), which was the first cost of a link
 * draining its backlog. The bytes are exactly mqtt-packet's (a unit test
 * compares them): MQTT 3.1.1 and 5.0 §3.3, fixed header 0x32 (PUBLISH,
 * QoS 1, neither DUP nor RETAIN), the remaining length as a variable byte
 * integer in the fewest bytes, the topic (2-byte length, UTF-8), the packet
 * id, MQTT 5 only an empty property list, then the payload.
 *
 * It never registers a packet id: the caller does (mqttBatch.ts).
 */

export interface PublishItem {
  /** The topic's UTF-8 bytes (at most 65,535). */
  readonly topic: Buffer;
  readonly payload: string;
  readonly messageId: number;
}

const PUBLISH_QOS1 = 0x32;
/** MQTT's largest remaining length (four variable-byte-integer bytes). */
const MAX_REMAINING = 268_435_455;

function varIntSize(n: number): number {
  return n < 128 ? 1 : n < 16_384 ? 2 : n < 2_097_152 ? 3 : 4;
}

/** The packets of `items`, in their order, in one Buffer. */
export function encodePublishes(items: readonly PublishItem[], protocolVersion: 4 | 5): Buffer {
  const props = protocolVersion === 5 ? 1 : 0;
  const payloadBytes = new Array<number>(items.length);
  let total = 0;
  for (let i = 0; i < items.length; i++) {
    const it = items[i]!;
    if (it.topic.length > 0xffff) throw new RangeError(`an MQTT topic is at most 65535 bytes (${it.topic.length})`);
    const p = Buffer.byteLength(it.payload);
    payloadBytes[i] = p;
    const remaining = 2 + it.topic.length + 2 + props + p;
    if (remaining > MAX_REMAINING) throw new RangeError(`an MQTT packet is at most ${MAX_REMAINING} bytes (${remaining})`);
    total += 1 + varIntSize(remaining) + remaining;
  }
  const out = Buffer.allocUnsafe(total);
  let at = 0;
  for (let i = 0; i < items.length; i++) {
    const it = items[i]!;
    const p = payloadBytes[i]!;
    out[at++] = PUBLISH_QOS1;
    let remaining = 2 + it.topic.length + 2 + props + p;
    do {
      let byte = remaining % 128;
      remaining = Math.floor(remaining / 128);
      if (remaining > 0) byte |= 0x80;
      out[at++] = byte;
    } while (remaining > 0);
    out[at++] = it.topic.length >> 8;
    out[at++] = it.topic.length & 0xff;
    at += it.topic.copy(out, at);
    out[at++] = it.messageId >> 8;
    out[at++] = it.messageId & 0xff;
    if (props) out[at++] = 0;
    at += out.write(it.payload, at, p, 'utf8');
  }
  return out;
}
