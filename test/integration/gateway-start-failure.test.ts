/**
 * A gateway whose start fails after its feeds started (here the telemetry
 * feed, late in its own start) leaves nothing behind on the shared subscriber
 * connection: no subscription, no reconnect listener; a later start serves.
 * Real Redis, the gateway's server in this process.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { loadConfig } from '../../runtime/config/load.js';
import type { GatewayConfig } from '../../runtime/config/schema.js';
import { startGatewayServer } from '../../runtime/gateway/server.js';
import { ValueCache } from '../../runtime/gateway/valueCache.js';
import { TelemetryFeed } from '../../runtime/gateway/ws.js';
import type { Subscriptions } from '../../runtime/redis/subscriptions.js';
import { describeSite } from '../../runtime/runtime.js';
import { rawClient, spawnRedis, wrapper, writeSite, type RedisServer } from '../helpers/servers.js';
import type { Redis } from 'ioredis';
import type { VoltageRedis } from '../../runtime/redis/voltageRedis.js';

let server: RedisServer;
let raw: Redis;
let bus: VoltageRedis;
let subs: Subscriptions;
let gateway: GatewayConfig;
const host = { statusCounts: () => ({}), metrics: async () => '' };

beforeAll(async () => {
  server = await spawnRedis();
  raw = rawClient(server);
  bus = wrapper(server);
  const site = loadConfig(
    writeSite({
      'site.yaml': `gateway: { port: 0 }
channels:
  - id: v1
    protocol: virtual
    pollMs: 100
    points:
      - { type: m, id: 1, name: P, sim: { kind: constant, value: 1 } }
models:
  - id: inv
    measurements: { P: {} }
    calculations: { twice: { expr: "P * 2" } }
    mapping: { P: "v1:m:1" }
`,
    }),
  );
  gateway = site.gateway!;
  await bus.site.load(describeSite(site));
  subs = bus.subscriber();
});
afterAll(async () => {
  await subs.close();
  raw.disconnect();
  await bus.close();
  await server.stop();
});

const channelsSubscribed = async () => ((await raw.pubsub('CHANNELS')) as string[]).sort();
const reconnectListeners = () => (subs as unknown as { reconnectListeners: Set<unknown> }).reconnectListeners.size;

describe('a gateway whose start fails after its feeds started', () => {
  it('stops them: no subscription and no reconnect listener is left, and the next start serves', async () => {
    const start = TelemetryFeed.prototype.start;
    const spy = vi.spyOn(TelemetryFeed.prototype, 'start').mockImplementationOnce(function (this: TelemetryFeed) {
      start.call(this);
      throw new Error('the telemetry feed failed late in its start');
    });
    try {
      await expect(startGatewayServer(gateway, bus, subs, host)).rejects.toThrow('failed late');
    } finally {
      spy.mockRestore();
    }
    expect(await channelsSubscribed()).toEqual([]);
    expect(reconnectListeners()).toBe(0);

    // The same connection serves a gateway that starts: its subscriptions were made (so the check above could fail).
    const gw = await startGatewayServer(gateway, bus, subs, host);
    expect((await fetch(`http://127.0.0.1:${gw.port}/api/v1/openapi.json`)).status).toBe(200);
    await gw.ready;
    expect((await channelsSubscribed()).length).toBeGreaterThan(2);
    expect(reconnectListeners()).toBe(1);
    await gw.stop();
    expect(await channelsSubscribed()).toEqual([]);
    expect(reconnectListeners()).toBe(0);
  });

  it("listens before it has read the site's values; if that reading fails, `ready` says so and stopping leaves nothing behind", async () => {
    const spy = vi.spyOn(ValueCache.prototype, 'load').mockRejectedValueOnce(new Error('the values could not be read'));
    try {
      const gw = await startGatewayServer(gateway, bus, subs, host);
      // REST answers meanwhile (from Redis).
      expect((await fetch(`http://127.0.0.1:${gw.port}/api/v1/openapi.json`)).status).toBe(200);
      await expect(gw.ready).rejects.toThrow('could not be read');
      await gw.stop();
    } finally {
      spy.mockRestore();
    }
    expect(await channelsSubscribed()).toEqual([]);
    expect(reconnectListeners()).toBe(0);
    const gw = await startGatewayServer(gateway, bus, subs, host);
    await gw.ready;
    await gw.stop();
  });
});
