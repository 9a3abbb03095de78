/**
 * A private redis-server with the whole voltage library loaded (the alarm
 * Functions are one module of it), a raw client for looking at keys, and the
 * typed wrapper the runtime uses.
 */
import type { Redis } from 'ioredis';
import type { VoltageRedis } from '../../runtime/redis/voltageRedis.js';
import { rawClient, spawnRedis, wrapper, type RedisServer } from './servers.js';

export interface AlarmRedis {
  readonly server: RedisServer;
  readonly client: Redis;
  readonly bus: VoltageRedis;
  stop(): Promise<void>;
}

export async function startAlarmRedis(): Promise<AlarmRedis> {
  const server = await spawnRedis();
  const client = rawClient(server);
  const bus = wrapper(server);
  await bus.core.loadLibrary();
  return {
    server,
    client,
    bus,
    async stop() {
      client.disconnect();
      await bus.close();
      await server.stop();
    },
  };
}
