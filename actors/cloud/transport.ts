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

/** The cloud answered and refused a batch (an HTTP status that is not 2xx): counted, retried. */
export class CloudRefusedError extends CloudOutageError {
  readonly refused = true;
}

/**
 * The cloud refused every message of a batch for its content (HTTP 400, 413, 415, 422, message by message):
 * the live uplink waits with its backoff (CloudRefusedError); a resend of parked messages takes them as refused again.
 */
export class CloudContentRefusedError extends CloudRefusedError {
  constructor(
    message: string,
    readonly refusals: readonly Refusal[],
  ) {
    super(message);
  }
}

/**
 * One message the cloud refused (MQTT 5: a PUBACK with a reason code ≥ 0x80,
 * e.g. 0x87 not authorized by its ACL; HTTP: the one message of a batch split
 * down to it that still got 400, 413, 415 or 422 while others were taken):
 * its answer about that message alone; the others of the batch are delivered.
 */
export interface Refusal {
  /** The message's place in the batch given to `deliver`. */
  readonly index: number;
  readonly topic: string;
  readonly payload: string;
  readonly reasonCode: number;
  /** What the refusal is named by, where the code alone is not MQTT's (HTTP: `HTTP 422`). */
  readonly reason?: string;
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
  /** MQTT: the topic it goes to when it is not the one its kind, model and channel make (a parked message sent again: the topic it was refused on). */
  readonly topic?: string;
}

/** How a batch goes. */
export interface DeliverOptions {
  /** Parked messages sent again (resend.ts), not the live uplink's: HTTP counts whole refusals of live batches only. */
  readonly parked?: boolean;
}

export interface UplinkTransport {
  /**
   * true: there is no session to open (HTTP), so connecting proves itself by
   * delivering the first batch: the link is online only once the cloud took one.
   */
  readonly provenByDelivery: boolean;
  /**
   * true: a batch refused for its content is split down to the messages refused, one request per part (HTTP: a
   * batch of n refused whole costs 2n − 1 requests), so a resend gives it small slices while they are refused.
   */
  readonly splitsRefusals: boolean;
  /** Opens the connection (birth message, subscriptions); throws CloudOutageError. */
  connect(): Promise<void>;
  /** Watches the open connection: `lost` is called once when it goes; returns its stop. */
  watch(lost: (why: string) => void): () => void;
  /**
   * Sends the messages in order. Resolves once all are on their way (MQTT:
   * handed to the connection within the in-flight window; HTTP: answered),
   * with `acked`, which resolves once the cloud answered each of them, with
   * the messages it refused one by one (MQTT 5), in batch order. Both reject
   * with CloudOutageError (CloudRefusedError when the whole batch is refused).
   * `lost` says the connection went: a batch half handed out stops there.
   */
  deliver(batch: readonly Outgoing[], lost: () => boolean, options?: DeliverOptions): Promise<{ readonly acked: Promise<readonly Refusal[]> }>;
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
