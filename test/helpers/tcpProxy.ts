/**
 * A TCP proxy on a free loopback port in front of a test server, for faults
 * between a client and its server: the server's answers may be replaced
 * (`toClient`), and what clients send may be held back (`hold`: queued, not
 * forwarded, until `release`; dropped with its connection if the client dies
 * meanwhile), or close the connection it arrives on (`dropRequests`: a link
 * dropped mid-request). Closed, with every connection, by the cleanups.
 */
import { connect, createServer, type Socket } from 'node:net';
import { freePort } from '../../runtime/redisServer.js';

export interface TcpProxy {
  readonly port: number;
  /** From now on, what clients send is queued instead of forwarded. */
  hold(): void;
  /** Forwards what was queued, and everything after it. */
  release(): void;
  /** While on, a request that arrives closes its connection (both sides) instead of being forwarded. */
  dropRequests(on: boolean): void;
}

export async function startTcpProxy(upstreamPort: number, cleanups: Array<() => unknown>, toClient: (d: Buffer) => Buffer = (d) => d): Promise<TcpProxy> {
  const port = await freePort();
  const sockets = new Set<Socket>();
  const flushes = new Set<() => void>();
  let holding = false;
  let dropping = false;
  const server = createServer((client) => {
    const up = connect(upstreamPort, '127.0.0.1');
    sockets.add(client).add(up);
    const queued: Buffer[] = [];
    const flush = () => {
      for (const d of queued.splice(0)) up.write(d);
    };
    flushes.add(flush);
    up.on('data', (d: Buffer) => {
      client.write(toClient(d));
    });
    client.on('data', (d: Buffer) => {
      if (dropping) {
        client.destroy();
        up.destroy();
      } else if (holding) queued.push(d);
      else up.write(d);
    });
    for (const s of [client, up])
      s.on('error', () => undefined).on('close', () => {
        flushes.delete(flush);
        client.destroy();
        up.destroy();
      });
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  cleanups.push(() => {
    for (const s of sockets) s.destroy();
    return new Promise((r) => server.close(r));
  });
  return {
    port,
    hold: () => {
      holding = true;
    },
    release: () => {
      holding = false;
      for (const f of flushes) f();
    },
    dropRequests: (on) => {
      dropping = on;
    },
  };
}
