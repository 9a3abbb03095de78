/** GET /api/v1/channels[/{id}]: each channel with its actor state, counters and (one) its points. */
import { ApiError, type Http } from '../http.js';
import type { SiteJson } from '../../domain/site.js';
import type { VoltageRedis } from '../../redis/voltageRedis.js';

function actorOf(actors: ReadonlyArray<Record<string, string>>, id: string) {
  const a = actors.find((x) => x.id === `channel/${id}`);
  const context = a?.context ? (JSON.parse(a.context) as Record<string, unknown>) : {};
  return { status: a?.status ?? 'unknown', state: a?.state ? (JSON.parse(a.state) as unknown) : null, restarts: Number(a?.restarts ?? 0), ...context };
}

export function channelRoutes(http: Http, redis: VoltageRedis, site: SiteJson): void {
  const byId = new Map(site.channels.map((c) => [c.id, c]));
  http.route('get', '/api/v1/channels', 'viewer', async () => {
    const actors = await redis.actors.list();
    const channels = site.channels.map((c) => ({
      id: c.id,
      name: c.name,
      protocol: c.protocol,
      pollMs: c.pollMs,
      points: c.points.length,
      actor: actorOf(actors, c.id),
    }));
    return { status: 200, body: { channels } };
  });
  http.route('get', '/api/v1/channels/:id', 'viewer', async ({ params }) => {
    const id = params[0]!;
    const c = byId.get(id);
    if (!c) throw new ApiError(404, 'NOT_FOUND', `no channel '${id}'`);
    const values = Object.fromEntries(
      await Promise.all((['m', 's', 'c', 'a'] as const).map(async (t) => [t, await redis.telemetry.channelValues(id, t)] as const)),
    );
    const points = c.points.map((p) => {
      const v = values[p.type]?.get(String(p.id));
      return { type: p.type, id: p.id, name: p.name, unit: p.unit, value: v?.value ?? null, ts: v?.ts ?? null, quality: v?.quality ?? null };
    });
    return { status: 200, body: { id: c.id, name: c.name, protocol: c.protocol, pollMs: c.pollMs, actor: actorOf(await redis.actors.list(), id), points } };
  });
}
