/**
 * A client of the WebSocket feed (`/ws`) that keeps every message it gets and
 * can stop reading (`socket.pause()`: what the gateway sends then waits in the
 * socket buffers), and the feed's client counters read from `/metrics`: for
 * the slow-client fault test and the soak benchmark.
 */
import WebSocket from 'ws';

export interface FeedMessage {
  topic?: string;
  snapshot?: boolean;
  ts?: number;
  values?: Record<string, number>;
}

export interface FeedClient {
  readonly ws: WebSocket;
  readonly messages: FeedMessage[];
  /** When each message arrived (ms since the epoch). */
  readonly arrivals: number[];
  /** Its TCP socket: `pause()` stops reading, `resume()` reads again. */
  readonly socket: { pause(): void; resume(): void };
}

export async function feedClient(base: string, token: string): Promise<FeedClient> {
  const ws = new WebSocket(`${base.replace('http', 'ws')}/ws?token=${token}`);
  const messages: FeedMessage[] = [];
  const arrivals: number[] = [];
  ws.on('message', (d) => {
    arrivals.push(Date.now());
    messages.push(JSON.parse(d.toString()) as FeedMessage);
  });
  await new Promise<void>((res, rej) => {
    ws.once('open', () => res());
    ws.once('error', rej);
  });
  const socket = (ws as unknown as { _socket: { pause(): void; resume(): void } })._socket;
  return { ws, messages, arrivals, socket };
}

/** The feed's clients now, those behind now, and how often one fell behind, from the text of `/metrics`. */
export function feedCounters(metrics: string): { clients: number; behind: number; fell: number } {
  const read = (name: string) => Number(new RegExp(`^${name} (\\d+)`, 'm').exec(metrics)?.[1]);
  return { clients: read('voltage_ws_clients'), behind: read('voltage_ws_clients_behind'), fell: read('voltage_ws_clients_fell_behind_total') };
}
