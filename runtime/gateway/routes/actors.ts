/** GET /api/v1/actors: the supervisor tree, each actor's machine state, status, restarts and next backoff. */
import type { Http } from '../http.js';
import type { VoltageRedis } from '../../redis/voltageRedis.js';
import { actorView } from './actorDetail.js';

export function actorRoutes(http: Http, redis: VoltageRedis): void {
  http.route('get', '/api/v1/actors', 'viewer', async () => {
    const actors = (await redis.actors.list()).map(actorView);
    return { status: 200, body: { actors } };
  });
}
