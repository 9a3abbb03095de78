/**
 * Publishes a run of QoS 1 messages through mqtt.js in one socket write.
 *
 * mqtt.js's `publish` writes each packet in six small pieces; this builds
 * the run's packets into one Buffer (publishPackets.ts) and writes it to the
 * client's stream, after registering each packet exactly as `publish` does
 * (mqtt.js 5, `MqttClient.publish` → `_sendPacket` → `_storeAndSend`): a
 * packet id from the client's allocator, the callback in `outgoing`, the
 * packet in `outgoingStore`. So PUBACK handling is mqtt.js's own (the
 * callback, a reason code, the id freed; a plain PUBACK through
 * pubackTap.ts, which calls the same method mqtt.js does), and so is a lost
 * connection (every callback in `outgoing` fails with "Connection closed").
 *
 * It relies on those internals of mqtt.js 5 (checked by `batchClient`, and
 * by the unit test against the installed mqtt.js). Whenever the client is not
 * in the plain connected state (stored packets being resent, disconnecting)
 * or an internal is missing, it falls back to `publish`, one call a message.
 */
import type { MqttClient, PacketCallback } from 'mqtt';
import { encodePublishes, type PublishItem } from './publishPackets.js';

/** What this module uses of mqtt.js's client beyond its public API. */
interface ClientInternals {
  connected: boolean;
  disconnecting: boolean;
  stream: { write(chunk: Buffer): boolean };
  outgoing: Record<number, { volatile: boolean; cmd: string; cb: PacketCallback }>;
  outgoingStore: { put(packet: object, cb?: (err?: Error) => void): unknown };
  _nextId(): number | null;
  _storeProcessing: boolean;
  _storeProcessingQueue: unknown[];
  options: { protocolVersion?: number };
}

/** The client's internals when they are those of mqtt.js 5 as this module knows them, else undefined. */
export function batchClient(client: MqttClient): ClientInternals | undefined {
  const c = client as unknown as Partial<ClientInternals>;
  const ok =
    typeof c._nextId === 'function' &&
    typeof c.outgoing === 'object' &&
    c.outgoing !== null &&
    typeof c.outgoingStore?.put === 'function' &&
    typeof c.stream?.write === 'function' &&
    Array.isArray(c._storeProcessingQueue) &&
    typeof c._storeProcessing === 'boolean';
  return ok ? (c as ClientInternals) : undefined;
}

export interface Publish {
  readonly topic: string;
  readonly topicBytes: Buffer;
  readonly payload: string;
}

/**
 * Called once per message, as mqtt.js calls a publish's callback; `index` (the
 * message's place in the run, plus `at`) when the run fell back to mqtt.js's
 * `publish`, else undefined: the packet id in `ids` names the message.
 */
export type RunAck = (err: Error | undefined, packet: unknown, index?: number) => void;

/**
 * Publishes `msgs` at QoS 1, in their order; `onAck` is called once per
 * message. Each message's packet id goes to `ids[at + k]` when the run goes in
 * one write (no closure per message on that path). Returns true when they
 * went in one write, false when it fell back to `publish` per message.
 */
export function publishRun(client: MqttClient, msgs: readonly Publish[], onAck: RunAck, ids?: number[], at = 0): boolean {
  const c = batchClient(client);
  const v = c?.options.protocolVersion === 5 ? 5 : 4;
  const one = (k: number) => client.publish(msgs[k]!.topic, msgs[k]!.payload, { qos: 1 }, (err, packet) => onAck(err, packet, at + k));
  if (!c?.connected || c.disconnecting || c._storeProcessing || c._storeProcessingQueue.length > 0) {
    for (let k = 0; k < msgs.length; k++) one(k);
    return false;
  }
  const items: PublishItem[] = [];
  // Built first, registered after: an encode that throws (a topic over 64 KiB) leaves no callback waiting.
  const send = () => {
    if (items.length === 0) return;
    const bytes = encodePublishes(items, v);
    for (let k = 0; k < items.length; k++) {
      const m = msgs[k]!;
      const messageId = items[k]!.messageId;
      if (ids) ids[at + k] = messageId;
      c.outgoing[messageId] = { volatile: false, cmd: 'publish', cb: onAck };
      c.outgoingStore.put({ cmd: 'publish', topic: m.topic, payload: m.payload, qos: 1, retain: false, dup: false, messageId });
    }
    c.stream.write(bytes);
  };
  for (let i = 0; i < msgs.length; i++) {
    const m = msgs[i]!;
    const messageId = c._nextId();
    if (messageId === null) {
      // No packet id left (65,535 in flight): mqtt.js queues the rest itself.
      send();
      for (let k = i; k < msgs.length; k++) one(k);
      return false;
    }
    items.push({ topic: m.topicBytes, payload: m.payload, messageId });
  }
  send();
  return true;
}
