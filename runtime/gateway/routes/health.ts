/** GET /health (no token): Redis reachable, actors counted by status. */
import type { Http } from '../http.js';
import type { VoltageRedis } from '../../redis/functions.js';

export function healthRoutes(http: Http, redis: VoltageRedis): void {
  http.route('get', '/health', 'public', async () => {
    let redisUp = true;
    let actors: Record<string, number> = {};
    try {
      await Promise.race([redis.ping(), new Promise((_, rej) => setTimeout(() => rej(new Error('timeout')), 1_000))]);
      for (const a of await redis.actors()) actors[a.status ?? 'unknown'] = (actors[a.status ?? 'unknown'] ?? 0) + 1;
    } catch {
      redisUp = false;
      actors = {};
    }
    const failing = (actors.failed ?? 0) + (actors.backoff ?? 0) + (actors.escalated ?? 0);
    return { status: redisUp ? 200 : 503, body: { status: !redisUp ? 'down' : failing > 0 ? 'degraded' : 'ok', redis: redisUp ? 'up' : 'down', actors } };
  });
}
