/**
 * The gateway's REST API with real HTTP against a running runtime and a
 * private Redis: every route, each error status, roles, and a command from
 * POST to confirmed on a device.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../runtime/config/load.js';
import { sha256 } from '../../runtime/gateway/http.js';
import { startRuntime, type RunningRuntime } from '../../runtime/runtime.js';
import { eventually, quietLog, spawnRedis, writeSite, type RedisServer } from '../helpers/servers.js';

let server: RedisServer;
let rt: RunningRuntime;
let base = '';
const tokens = { viewer: 'v-token', operator: 'o-token', admin: 'a-token', spammer: 's-token' };

beforeAll(async () => {
  server = await spawnRedis();
  const site = loadConfig(writeSite({
    'site.yaml': `gateway:
  port: 0
  rateLimit: { perSecond: 2, burst: 40 }
  maxBodyBytes: 256
  tokens:
    - { name: vera, role: viewer, sha256: ${sha256(tokens.viewer)} }
    - { name: otto, role: operator, sha256: ${sha256(tokens.operator)} }
    - { name: ada, role: admin, sha256: ${sha256(tokens.admin)} }
    - { name: sam, role: viewer, sha256: ${sha256(tokens.spammer)} }
channels:
  - id: v1
    protocol: virtual
    pollMs: 50
    points:
      - { type: m, id: 1, name: P, unit: kW, sim: { kind: constant, value: 12 } }
      - { type: a, id: 1, min: 0, max: 100 }
models:
  - id: inv
    measurements: { P: { unit: kW } }
    controls: { limit: { unit: kW } }
    calculations: { twice: { expr: "P * 2" } }
    mapping: { P: "v1:m:1", limit: "v1:a:1" }
`,
  }));
  rt = await startRuntime(site, { redisUrl: server.url, log: quietLog });
  const port = await eventually(() => rt.gatewayPort());
  base = `http://127.0.0.1:${port}`;
  await eventually(async () => (await get('/api/v1/models/inv', 'viewer')).body.values?.[1]?.value === 24);
});
afterAll(async () => {
  await rt.stop();
  await server.stop();
});

async function call(method: string, path: string, who?: keyof typeof tokens, body?: string) {
  const headers: Record<string, string> = {};
  if (who) headers.authorization = `Bearer ${tokens[who]}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const r = await fetch(base + path, { method, headers, body });
  const text = await r.text();
  let parsed: any;
  try { parsed = JSON.parse(text); } catch { parsed = text; }
  return { status: r.status, body: parsed };
}
const get = (path: string, who?: keyof typeof tokens) => call('GET', path, who);
const post = (path: string, who: keyof typeof tokens | undefined, body: string) => call('POST', path, who, body);

describe('REST API', () => {
  it('GET /health needs no token and counts actors', async () => {
    const r = await get('/health');
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ status: 'ok', redis: 'up' });
    expect(r.body.actors.running).toBeGreaterThanOrEqual(5);
  });

  it('channels and models, with values, timestamps and quality', async () => {
    const list = await get('/api/v1/channels', 'viewer');
    expect(list.body.channels).toEqual([expect.objectContaining({ id: 'v1', protocol: 'virtual', points: 2, actor: expect.objectContaining({ status: 'running' }) })]);
    const ch = await get('/api/v1/channels/v1', 'viewer');
    expect(ch.body.points[0]).toMatchObject({ type: 'm', id: 1, name: 'P', unit: 'kW', value: 12, quality: 'good' });
    expect(ch.body.points[0].ts).toBeGreaterThan(Date.now() - 10_000);
    const models = await get('/api/v1/models', 'viewer');
    expect(models.body.models).toEqual([{ id: 'inv', name: 'inv', nature: 'generic', measurements: 1, calculations: 1, controls: ['limit'] }]);
    const m = await get('/api/v1/models/inv', 'viewer');
    expect(m.body.values).toEqual([
      expect.objectContaining({ name: 'P', calculated: false, value: 12, quality: 'good' }),
      expect.objectContaining({ name: 'twice', calculated: true, value: 24, quality: 'good' }),
    ]);
  });

  it('a command from POST to confirmed, with its history and who sent it', async () => {
    const r = await post('/api/v1/models/inv/controls/limit', 'operator', '{"value": 42}');
    expect(r.status).toBe(202);
    const id = r.body.commandId as string;
    const done = await eventually(async () => {
      const c = await get(`/api/v1/commands/${id}`, 'viewer');
      return c.body.status === 'confirmed' ? c.body : undefined;
    });
    expect(done).toMatchObject({ id, model: 'inv', name: 'limit', value: 42, source: 'otto', readback: 42 });
    expect(done.history.map((h: { event: string; who: string }) => `${h.event}:${h.who}`)).toEqual(['accepted:otto', 'confirmed:otto']);
  });

  it('GET /api/v1/actors is the tree; GET /metrics is Prometheus text', async () => {
    const a = await get('/api/v1/actors', 'viewer');
    const ids = a.body.actors.map((x: { id: string }) => x.id).sort();
    expect(ids).toEqual(['channel/v1', 'channels', 'gateway', 'model/inv', 'models', 'root']);
    expect(a.body.actors.find((x: { id: string }) => x.id === 'gateway')).toMatchObject({ parent: 'root', status: 'running', state: 'listening' });
    const m = await get('/metrics', 'viewer');
    expect(m.status).toBe(200);
    expect(m.body).toMatch(/^voltage_points_total \d+/m);
    expect(m.body).toContain('voltage_actor_restarts{actor="channel/v1",status="running"} 0');
    expect(m.body).toContain('voltage_poll_to_redis_seconds_bucket');
  });

  it.each([
    ['no token', 'GET', '/api/v1/models', undefined, undefined, 401, 'UNAUTHORIZED'],
    ['a wrong token', 'GET', '/api/v1/models', 'nobody', undefined, 401, 'UNAUTHORIZED'],
    ['a viewer sending a command', 'POST', '/api/v1/models/inv/controls/limit', 'viewer', '{"value":1}', 403, 'FORBIDDEN'],
    ['an unknown model', 'GET', '/api/v1/models/nope', 'viewer', undefined, 404, 'NOT_FOUND'],
    ['an unknown channel', 'GET', '/api/v1/channels/nope', 'viewer', undefined, 404, 'NOT_FOUND'],
    ['an unknown command', 'GET', '/api/v1/commands/cmd-999', 'viewer', undefined, 404, 'NOT_FOUND'],
    ['an unknown control', 'POST', '/api/v1/models/inv/controls/nope', 'operator', '{"value":1}', 404, 'NOT_FOUND'],
    ['an unknown route', 'GET', '/api/v2/x', 'viewer', undefined, 404, 'NOT_FOUND'],
    ['a value out of range', 'POST', '/api/v1/models/inv/controls/limit', 'operator', '{"value":500}', 400, 'OUT_OF_RANGE'],
    ['a value that is not a number', 'POST', '/api/v1/models/inv/controls/limit', 'operator', '{"value":"5"}', 400, 'BAD_REQUEST'],
    ['a body that is not JSON', 'POST', '/api/v1/models/inv/controls/limit', 'admin', '{value: 5', 400, 'BAD_JSON'],
    ['an unknown field', 'POST', '/api/v1/models/inv/controls/limit', 'admin', '{"value":5,"force":true}', 400, 'BAD_REQUEST'],
    ['a body over the limit', 'POST', '/api/v1/models/inv/controls/limit', 'admin', JSON.stringify({ value: 1, pad: 'x'.repeat(400) }), 413, 'BODY_TOO_LARGE'],
  ] as const)('%s: %i JSON error', async (_, method, path, who, body, status, code) => {
    const headers: Record<string, string> = {};
    if (who) headers.authorization = `Bearer ${who in tokens ? tokens[who as keyof typeof tokens] : 'wrong'}`;
    const r = await fetch(base + path, { method, headers, body });
    expect(r.status).toBe(status);
    expect(r.headers.get('content-type')).toBe('application/json');
    const json = (await r.json()) as { error: { code: string; message: string } };
    expect(json.error.code).toBe(code);
    expect(json.error.message.length).toBeGreaterThan(5);
  });

  it('rate limits per token (429), and other tokens are not affected', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 60; i++) statuses.push((await get('/api/v1/models', 'spammer')).status);
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThan(10);
    expect(statuses.slice(0, 30).every((s) => s === 200)).toBe(true);
    expect((await get('/api/v1/models', 'viewer')).status).toBe(200);
  });

  it('refused commands are audited too, with who and why', async () => {
    await post('/api/v1/models/inv/controls/limit', 'operator', '{"value":-5}');
    const audit = await fetch(`${base}/api/v1/commands/none`, { headers: { authorization: `Bearer ${tokens.viewer}` } });
    expect(audit.status).toBe(404);
    const { Redis } = await import('ioredis');
    const c = new Redis(server.url);
    const entries = await c.xrevrange('audit:commands', '+', '-', 'COUNT', 1);
    c.disconnect();
    const f = entries[0]![1];
    expect(f).toEqual(expect.arrayContaining(['event', 'rejected', 'who', 'otto', 'model', 'inv', 'name', 'limit', 'value', '-5']));
    expect(f.join(' ')).toContain('below the minimum 0');
  });
});
