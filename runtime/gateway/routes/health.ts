/**
 * GET /health (no token): Redis reachable, this runtime's actors counted by
 * status. Probes and load balancers call it often and without a token, so it
 * must stay cheap: the counts are kept in memory (the runtime sends them when a
 * status changes), and requests
 * that arrive together share one PING (with a 1 s limit).
 */
import type { Http } from '../http.js';
import type { VoltageRedis } from '../../redis/voltageRedis.js';
import type { GatewayHost } from '../server.js';
import { within } from '../../redis/connect.js';

export const HEALTH_PING_TIMEOUT_MS = 1_000;

export function healthRoutes(http: Http, redis: VoltageRedis, host: Pick<GatewayHost, 'statusCounts'>): void {
  let check: Promise<boolean> | undefined;
  const redisUp = () =>
    (check ??= within(
      redis.ping().then(
        () => true,
        () => false,
      ),
      HEALTH_PING_TIMEOUT_MS,
    )
      .then((up) => up === true)
      .finally(() => {
        check = undefined;
      }));
  http.route('get', '/health', 'public', async () => {
    const up = await redisUp();
    const actors = host.statusCounts();
    const failing = (actors.failed ?? 0) + (actors.backoff ?? 0) + (actors.escalated ?? 0);
    if (!up) {
      // The gateway answers (from memory where it can); what needs Redis gets 503 until it is back.
      const downForMs = redis.core.unreachableForMs() ?? HEALTH_PING_TIMEOUT_MS;
      return { status: 503, body: { status: 'degraded', redis: 'down', redisDownForMs: downForMs, actors } };
    }
    return { status: 200, body: { status: failing > 0 ? 'degraded' : 'ok', redis: 'up', actors } };
  });
}
