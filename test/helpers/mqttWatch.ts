/**
 * A subscriber on a test broker that collects everything it gets (a
 * persistent session, so that messages wait for it across a broker restart),
 * and the check of the cloud link's seqs: in order, without gaps, duplicates counted.
 */
import { expect } from 'vitest';
import { connect, type IClientOptions, type MqttClient } from 'mqtt';

/** A site whose one model follows a counter polled every 40 ms: one message a poll, its value the poll's number. */
export const COUNTER_SITE = `channels:
  - id: v1
    protocol: virtual
    pollMs: 40
    points:
      - { type: m, id: 1, sim: { kind: counter, start: 1, step: 1 } }
models:
  - id: inv
    measurements: { P: {} }
    mapping: { P: "v1:m:1" }
`;

export interface Received {
  readonly topic: string;
  readonly body: Record<string, unknown>;
  /** When the watcher got it (Date.now()). */
  readonly at: number;
}

/** A watcher on the broker: a persistent session (clean false), so that messages wait for it across a broker restart; `opts`: TLS CA, login. */
export async function watchBroker(
  cleanups: Array<() => unknown>,
  url: string,
  topic: string,
  clientId = `watch-${Math.random().toString(36).slice(2)}`,
  opts: Pick<IClientOptions, 'ca' | 'username' | 'password'> = {},
): Promise<{ client: MqttClient; got: Received[] }> {
  const got: Received[] = [];
  const client = connect(url, { clientId, clean: false, reconnectPeriod: 100, protocolVersion: 4, ...opts });
  client.on('error', () => undefined);
  client.on('message', (tp, payload) => {
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(payload.toString()) as Record<string, unknown>;
    } catch {
      body = { raw: payload.toString() };
    }
    got.push({ topic: tp, body, at: Date.now() });
  });
  await new Promise<void>((r) => client.once('connect', () => r()));
  await client.subscribeAsync(topic, { qos: 1 });
  cleanups.push(() => client.endAsync(true));
  return { client, got };
}

export const dataSeqs = (got: Received[]) => got.filter((m) => m.topic.includes('/data/')).map((m) => m.body.seq as number);

/** Drops each seq already seen; what remains must be 1, 2, 3, … with no gap. */
export function checkOrder(seqs: number[]): { unique: number; duplicates: number } {
  let max = 0;
  let duplicates = 0;
  for (const s of seqs) {
    if (s <= max) {
      duplicates += 1;
      continue;
    }
    expect(s).toBe(max + 1);
    max = s;
  }
  return { unique: max, duplicates };
}
