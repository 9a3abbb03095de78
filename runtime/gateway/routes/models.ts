/**
 * GET /api/v1/models[/{id}]: values (calculated ones included) with timestamp
 * and quality. POST /api/v1/models/{id}/controls/{name} {"value": n}: a command
 * through m2c, 202 with its id; refused ones are audited too.
 */
import { ApiError, type Http } from '../http.js';
import { settled } from '../../reporter.js';
import type { SiteJson } from '../../domain/site.js';
import { m2cRefusal } from '../../redis/commands.js';
import type { VoltageRedis } from '../../redis/voltageRedis.js';
import { controlBody } from '../openapi.js';
import type { ValueCache } from '../valueCache.js';

export function modelRoutes(http: Http, redis: VoltageRedis, site: SiteJson, commandTimeoutMs: number, cache: ValueCache): void {
  const byId = new Map(site.models.map((m) => [m.id, m]));
  const list = {
    models: site.models.map((m) => ({
      id: m.id,
      name: m.name,
      nature: m.nature,
      measurements: m.measurements.length,
      calculations: m.calculations.length,
      controls: m.controls.map((c) => c.name),
    })),
  };
  http.route('get', '/api/v1/models', 'viewer', async () => {
    return { status: 200, body: list };
  });
  // A model's JSON is kept until its values change: at thousands of requests/s for values
  // that change once a poll, most requests are served from here.
  const bodies = new Map<string, { readonly version: number; readonly text: string }>();
  http.route('get', '/api/v1/models/:id', 'viewer', async ({ params }) => {
    const id = params[0]!;
    const m = byId.get(id);
    if (!m) throw new ApiError(404, 'NOT_FOUND', `no model '${id}'`);
    // Redis unreachable: the values are served from memory, marked so, and none of them is good any more.
    const downForMs = redis.core.unreachableForMs();
    const version = cache.version(id);
    const kept = bodies.get(id);
    if (downForMs === undefined && kept && kept.version === version) return { status: 200, body: kept.text };
    const stored = cache.get(id) ?? (await redis.telemetry.modelValues(id));
    const value = (name: string, unit: string | null, calculated: boolean) => {
      const v = stored.get(name);
      const quality = v?.quality ?? null;
      return { name, unit, calculated, value: v?.value ?? null, ts: v?.ts ?? null, quality: downForMs !== undefined && quality === 'good' ? 'stale' : quality };
    };
    const text = JSON.stringify({
      id: m.id,
      name: m.name,
      nature: m.nature,
      values: [...m.measurements.map((x) => value(x.name, x.unit, false)), ...m.calculations.map((x) => value(x.name, x.unit, true))],
      controls: m.controls,
      ...(downForMs !== undefined ? { source: 'memory', redisDownForMs: downForMs } : {}),
    });
    if (downForMs !== undefined) return { status: 200, body: text };
    if (version !== undefined) bodies.set(id, { version, text });
    return { status: 200, body: text };
  });
  http.route('post', '/api/v1/models/:id/controls/:name', 'operator', async ({ params, body, caller }) => {
    const [model, name] = [params[0]!, params[1]!];
    const value = (body as { value?: unknown } | undefined)?.value;
    const who = caller?.name ?? 'unknown';
    const refuse = async (err: ApiError) => {
      // The refusal is the answer; an audit write that fails is reported rather than thrown over it.
      await settled(redis.commands.auditRejected(who, model, name, value, err.message), { source: 'audit', model, name });
      throw err;
    };
    if (!byId.has(model)) return refuse(new ApiError(404, 'NOT_FOUND', `no model '${model}'`));
    const parsed = controlBody.safeParse(body);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      const where = issue.path.length ? `"${issue.path.join('.')}"` : 'the body';
      const what = issue.code === 'unrecognized_keys' ? `unknown field(s) ${issue.keys.join(', ')}` : `${where}: ${issue.message}`;
      return refuse(new ApiError(400, 'BAD_REQUEST', `${what}; send {"value": <number>}`));
    }
    try {
      const commandId = await redis.commands.m2c(model, name, parsed.data.value, who, commandTimeoutMs);
      return { status: 202, body: { commandId } };
    } catch (e) {
      const msg = m2cRefusal(e);
      if (/has no control|^no model /.test(msg)) return refuse(new ApiError(404, 'NOT_FOUND', msg));
      if (/below the minimum|above the maximum/.test(msg)) return refuse(new ApiError(400, 'OUT_OF_RANGE', msg));
      throw e;
    }
  });
}
