/**
 * What a cloud link needs from the way it reaches its cloud (MQTT, HTTP): a
 * connection to open and close, and `deliver`, which resolves only once the
 * cloud has acknowledged every message given (MQTT: each PUBACK; HTTP: a 2xx
 * answer to the batch). The link (CloudLink) keeps the outbox, the seqs, the
 * order and the backlog bound; a transport never reads Redis and never
 * reorders what it is given.
 */
import { OutboxOutageError } from '../outbox/consumer.js';

/** Transient to the machine: the cloud or Redis is unreachable; retried with backoff. */
export class CloudOutageError extends OutboxOutageError {}

/** The cloud answered and refused (an MQTT 5 reason code ≥ 0x80, an HTTP status that is not 2xx): counted, retried. */
export class CloudRefusedError extends CloudOutageError {
  readonly refused = true;
}

/** One message, its seq given, ready to go. */
export interface Outgoing {
  readonly kind: 'data' | 'channel' | 'alarm' | 'notify';
  /** The model of a data message ('' otherwise). */
  readonly model: string;
  /** The channel of a poll's message ('' otherwise). */
  readonly channel: string;
  /** The message's JSON (messages.ts). */
  readonly payload: string;
}

export interface UplinkTransport {
  /**
   * true: there is no session to open (HTTP), so connecting proves itself by
   * delivering the first batch: the link is online only once the cloud took one.
   */
  readonly provenByDelivery: boolean;
  /** Opens the connection (birth message, subscriptions); throws CloudOutageError. */
  connect(): Promise<void>;
  /** Watches the open connection: `lost` is called once when it goes; returns its stop. */
  watch(lost: (why: string) => void): () => void;
  /**
   * Sends the messages in order. Resolves once all are on their way (MQTT:
   * handed to the connection within the in-flight window; HTTP: answered),
   * with `acked`, which resolves once the cloud acknowledged all of them.
   * Both reject with CloudOutageError (CloudRefusedError when refused).
   */
  deliver(batch: readonly Outgoing[], stopped: () => boolean): Promise<{ readonly acked: Promise<void> }>;
  /** Says goodbye when it can and closes. */
  close(): Promise<void>;
}

export function withTimeout<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} within ${ms} ms`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}
