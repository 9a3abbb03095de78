/** GET /api/v1/actors: the supervisor tree, each actor's machine state, status, restarts and next backoff. */
import type { Http } from '../http.js';
import type { VoltageRedis } from '../../redis/voltageRedis.js';

export function actorRoutes(http: Http, redis: VoltageRedis): void {
  http.route('get', '/api/v1/actors', 'viewer', async () => {
    const actors = (await redis.actors.list()).map((a) => ({
      id: a.id, kind: a.kind ?? null, parent: a.parent || null, status: a.status ?? null,
      state: a.state ? (JSON.parse(a.state) as unknown) : null,
      context: a.context ? (JSON.parse(a.context) as unknown) : null,
      restarts: Number(a.restarts ?? 0), nextBackoffMs: Number(a.nextBackoffMs ?? 0), backoffUntil: Number(a.backoffUntil ?? 0),
      lastError: a.lastError || null, order: Number(a.order ?? 0),
    }));
    return { status: 200, body: { actors } };
  });
}
