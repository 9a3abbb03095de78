/** Actors in Redis: each actor's reported state (`actor:{id}`, the `actors` set), as `voltage status` and the API read it. */
import type { ActorFields, ActorRecord } from '../domain/actors.js';
import { redisCall, type RedisCore } from './core.js';
import { KEYS } from './keys.js';

export class ActorsRedis {
  constructor(private readonly core: RedisCore) {}

  /** Merges fields into the actor's hash, bumps its version and publishes actor:update; returns the version. */
  report(id: string, fields: ActorFields): Promise<number> {
    return this.core.fcall('actor_report', { id, fields });
  }

  /** Every actor reported since the site was loaded. */
  async list(): Promise<ActorRecord[]> {
    const client = this.core.client;
    const ids = await redisCall('SMEMBERS', () => client.smembers(KEYS.actors));
    const pipe = client.pipeline();
    for (const id of ids) pipe.hgetall(KEYS.actor(id));
    const res = (await redisCall('HGETALL', () => pipe.exec())) ?? [];
    return res.map(([, v], i) => ({ id: ids[i]!, ...(v as Record<string, string>) }));
  }
}
