/**
 * What a history writer keeps in Redis beside its consumer group (its reads
 * and acknowledgements are the outbox's, outbox.ts): the KeepFilter's state of
 * a backend (`history:{backend}:keep`: series id → JSON) and where each of its
 * tiers stands (`history:{backend}:tiers`: tier name → the end of its last
 * bucket written, epoch ms). The writer is the only writer of both.
 */
import { redisCall, type RedisCore } from './core.js';
import { KEYS } from './keys.js';

export class HistoryRedis {
  constructor(private readonly core: RedisCore) {}

  /** A backend's KeepFilter state as stored: series id → JSON. */
  keepState(backend: string): Promise<Record<string, string>> {
    return redisCall('HGETALL', () => this.core.client.hgetall(KEYS.historyKeep(backend)));
  }

  /** Stores the state of the series a batch changed (series id, JSON). */
  async saveKeepState(backend: string, dirty: ReadonlyArray<readonly [string, string]>): Promise<void> {
    if (dirty.length === 0) return;
    await redisCall('HSET', () => this.core.client.hset(KEYS.historyKeep(backend), ...dirty.flat()));
  }

  /** A backend's tier marks as stored (tier name → epoch ms, as text; empty when none was stored). */
  tierMarks(backend: string): Promise<Record<string, string>> {
    return redisCall('HGETALL', () => this.core.client.hgetall(KEYS.historyTiers(backend)));
  }

  async saveTierMarks(backend: string, marks: Readonly<Record<string, number>>): Promise<void> {
    await redisCall('HSET', () => this.core.client.hset(KEYS.historyTiers(backend), marks));
  }
}
