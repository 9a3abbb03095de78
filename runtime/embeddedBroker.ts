/**
 * The demo's MQTT broker: aedes in this process on a free loopback port, so
 * that the demo's cloud link has somewhere to uplink and `mosquitto_sub` has
 * something to watch. Not for production: it keeps nothing across a restart.
 */
import { createServer } from 'node:net';
import { Aedes } from 'aedes';
import { freePort } from './redisServer.js';

export interface EmbeddedBroker {
  readonly port: number;
  readonly url: string;
  stop(): Promise<void>;
}

export async function startEmbeddedBroker(port?: number): Promise<EmbeddedBroker> {
  const p = port ?? (await freePort());
  const broker = await Aedes.createBroker();
  const server = createServer(broker.handle);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(p, '127.0.0.1', () => resolve());
  });
  return {
    port: p,
    url: `mqtt://127.0.0.1:${p}`,
    stop: async () => {
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
