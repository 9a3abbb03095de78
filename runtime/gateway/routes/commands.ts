/** GET /api/v1/commands/{id}: a command's status and its history (from the audit stream). */
import { ApiError, type Http } from '../http.js';
import { commandEvent } from '../../domain/commands.js';
import { KEYS } from '../../redis/keys.js';
import type { VoltageRedis } from '../../redis/voltageRedis.js';

export function commandRoutes(http: Http, redis: VoltageRedis): void {
  http.route('get', '/api/v1/commands/:id', 'viewer', async ({ params }) => {
    const c = await redis.commands.command(params[0]!);
    if (!c) throw new ApiError(404, 'NOT_FOUND', `no command '${params[0]}'`);
    const history = (await redis.commands.auditOf(c.id, KEYS.audit)).map(commandEvent);
    return { status: 200, body: { ...c, history } };
  });
}
