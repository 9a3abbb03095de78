/**
 * Actors in Redis: each actor's reported state (`actor:{id}`, the `actors` set),
 * as `voltage status` and the API read it, and each actor's last transitions
 * for the visualizer: a stream `actor:{id}:transitions` capped near
 * TRANSITIONS_MAXLEN entries (MAXLEN ~: Redis trims whole nodes, cheaply), so it
 * survives a restart of the actor or of the runtime and never grows. The journal
 * is diagnostic, not committed state: a plain XADD, and a lost entry is no harm.
 */
import type { ActorFields, ActorRecord, TransitionEntry } from '../domain/actors.js';
import { redisCall, type RedisCore } from './core.js';
import { fieldsOf } from './encoding.js';
import { KEYS } from './keys.js';

export const TRANSITIONS_MAXLEN = 200;

export class ActorsRedis {
  constructor(private readonly core: RedisCore) {}

  /**
   * Merges fields into the actor's hash, bumps its version and publishes actor:update; returns the version.
   * `transition`: appended to the actor's journal in the same call (as appendTransition would).
   */
  report(id: string, fields: ActorFields, transition?: TransitionEntry): Promise<number> {
    return this.core.fcall('actor_report', { id, fields, ...(transition ? { transition: { entry: transition, maxLen: TRANSITIONS_MAXLEN } } : {}) });
  }

  /** Every actor reported since the site was loaded. */
  async list(): Promise<ActorRecord[]> {
    return this.records(await redisCall('SMEMBERS', () => this.core.client.smembers(KEYS.actors)));
  }

  /** The records of these actors, in their order (empty fields for one never reported). */
  async records(ids: readonly string[]): Promise<ActorRecord[]> {
    const pipe = this.core.client.pipeline();
    for (const id of ids) pipe.hgetall(KEYS.actor(id));
    const res = (await redisCall('HGETALL', () => pipe.exec())) ?? [];
    return res.map(([, v], i) => ({ id: ids[i]!, ...(v as Record<string, string>) }));
  }

  /** Appends to the actor's transitions journal. */
  async appendTransition(id: string, e: TransitionEntry): Promise<void> {
    const fields = ['ts', String(e.ts), 'event', e.event, 'from', e.from, 'to', e.to];
    if (e.error) fields.push('error', e.error);
    await redisCall('XADD', () => this.core.client.xadd(KEYS.actorTransitions(id), 'MAXLEN', '~', TRANSITIONS_MAXLEN, '*', ...fields));
  }

  /** The newest `count` transitions, newest first. */
  async transitions(id: string, count = 50): Promise<TransitionEntry[]> {
    const rows = await redisCall('XREVRANGE', () => this.core.client.xrevrange(KEYS.actorTransitions(id), '+', '-', 'COUNT', count));
    return rows.map(([, flat]) => {
      const f = fieldsOf(flat);
      return { ts: Number(f.ts), event: f.event ?? '', from: f.from ?? '', to: f.to ?? '', ...(f.error ? { error: f.error } : {}) };
    });
  }
}
