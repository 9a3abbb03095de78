/**
 * The gateway's REST API with real HTTP against a running runtime and a
 * private Redis: every route, each error status, roles, and a command from
 * POST to confirmed on a device.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../runtime/config/load.js';
import { sha256 } from '../../runtime/gateway/http.js';
import { startRuntime, type RunningRuntime } from '../../runtime/runtime.js';
import { eventually, pidAlive, quietLog, spawnRedis, writeSite, type RedisServer } from '../helpers/servers.js';

let server: RedisServer;
let rt: RunningRuntime;
let base = '';
/** The wide model's value names: long, so that its deltas (~100 kB) fill a paused client's socket buffers quickly. */
const wide = (i: number) => `a_rather_long_measurement_name_${i}`;
const tokens = { viewer: 'v-token', operator: 'o-token', admin: 'a-token', spammer: 's-token' };

beforeAll(async () => {
  server = await spawnRedis();
  const site = loadConfig(
    writeSite({
      'site.yaml': `gateway:
  port: 0
  rateLimit: { perSecond: 2, burst: 40 }
  maxBodyBytes: 256
  ws: { intervalMs: 100, maxBufferBytes: 65536 }
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
  - id: v2
    protocol: virtual
    pollMs: 100
    pointsFile: big.csv
models:
  - id: big
    template: wide
    channel: v2
  - id: inv
    measurements: { P: { unit: kW } }
    controls: { limit: { unit: kW } }
    calculations: { twice: { expr: "P * 2" } }
    mapping: { P: "v1:m:1", limit: "v1:a:1" }
templates:
  wide:
    measurements: { ${Array.from({ length: 2000 }, (_, i) => `${wide(i)}: {}`).join(', ')} }
`,
      'big.csv': `type,id,name,sim.kind,sim.start,sim.step\n${Array.from({ length: 2000 }, (_, i) => `m,${i},${wide(i)},counter,0,1`).join('\n')}\n`,
    }),
  );
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
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = text;
  }
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
    expect(list.body.channels[0]).toEqual(
      expect.objectContaining({ id: 'v1', protocol: 'virtual', points: 2, actor: expect.objectContaining({ status: 'running' }) }),
    );
    const ch = await get('/api/v1/channels/v1', 'viewer');
    expect(ch.body.points[0]).toMatchObject({ type: 'm', id: 1, name: 'P', unit: 'kW', value: 12, quality: 'good' });
    expect(ch.body.points[0].ts).toBeGreaterThan(Date.now() - 10_000);
    const models = await get('/api/v1/models', 'viewer');
    expect(models.body.models).toContainEqual({ id: 'inv', name: 'inv', nature: 'generic', measurements: 1, calculations: 1, controls: ['limit'] });
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
    // Numbers as numbers (the audit stream keeps them as text).
    expect(done.history[0]).toEqual({ event: 'accepted', who: 'otto', value: 42, at: expect.any(Number) });
    expect(done.history[1].at).toBeGreaterThanOrEqual(done.history[0].at);
  });

  it('GET /api/v1/actors is the tree; GET /metrics is Prometheus text', async () => {
    const a = await get('/api/v1/actors', 'viewer');
    const ids = a.body.actors.map((x: { id: string }) => x.id).sort();
    expect(ids).toEqual(['channel/v1', 'channel/v2', 'channels', 'gateway', 'model/big', 'model/inv', 'models', 'root']);
    expect(a.body.actors.find((x: { id: string }) => x.id === 'gateway')).toMatchObject({ parent: 'root', status: 'running', state: 'listening' });
    const m = await get('/metrics', 'viewer');
    expect(m.status).toBe(200);
    expect(m.body).toMatch(/^voltage_points_total \d+/m);
    expect(m.body).toContain('voltage_actor_restarts_total{actor="channel/v1"} 0');
    expect(m.body).toContain('voltage_actor_status{actor="channel/v1",status="running"} 1');
    expect(m.body).toMatch(/^voltage_process_cpu_seconds_total \S+/m);
    expect(m.body).not.toContain('process_process_');
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
    ['an alarm action misspelt', 'POST', '/api/v1/alarms/grid.freq/acknowledge', 'operator', '{}', 404, 'NOT_FOUND'],
    ['a control of an unknown model', 'POST', '/api/v1/models/nope/controls/limit', 'operator', '{"value":1}', 404, 'NOT_FOUND'],
    ['a wrong method on a known path', 'DELETE', '/api/v1/models/inv', 'viewer', undefined, 405, 'METHOD_NOT_ALLOWED'],
    ['a POST to a path that takes GET', 'POST', '/api/v1/models', 'operator', '{}', 405, 'METHOD_NOT_ALLOWED'],
    ['a value out of range', 'POST', '/api/v1/models/inv/controls/limit', 'operator', '{"value":500}', 400, 'OUT_OF_RANGE'],
    ['a value that is not a number', 'POST', '/api/v1/models/inv/controls/limit', 'operator', '{"value":"5"}', 400, 'BAD_REQUEST'],
    ['a body that is not JSON', 'POST', '/api/v1/models/inv/controls/limit', 'admin', '{value: 5', 400, 'BAD_JSON'],
    ['an unknown field', 'POST', '/api/v1/models/inv/controls/limit', 'admin', '{"value":5,"force":true}', 400, 'BAD_REQUEST'],
    ['a body over the limit', 'POST', '/api/v1/models/inv/controls/limit', 'admin', JSON.stringify({ value: 1, pad: 'x'.repeat(400) }), 413, 'BODY_TOO_LARGE'],
  ] as const)('%s: a JSON error with the right status', async (_, method, path, who, body, status, code) => {
    const headers: Record<string, string> = {};
    if (who) headers.authorization = `Bearer ${who in tokens ? tokens[who as keyof typeof tokens] : 'wrong'}`;
    const r = await fetch(base + path, { method, headers, body });
    expect(r.status).toBe(status);
    expect(r.headers.get('content-type')).toBe('application/json');
    const json = (await r.json()) as { error: { code: string; message: string } };
    expect(json.error.code).toBe(code);
    expect(json.error.message.length).toBeGreaterThan(5);
    if (status === 405) expect(r.headers.get('allow')).toMatch(/GET|POST/);
    if (path.startsWith('/api/v1/models/nope/controls')) expect(json.error.message).toBe("no model 'nope'");
    // A known path with an unknown last step names the steps it takes.
    if (path.endsWith('/acknowledge'))
      expect(json.error.message).toMatch(/no such route; after \/api\/v1\/alarms\/grid\.freq this path takes ack, shelve, unshelve/);
  });

  it('serves an OpenAPI 3 document whose request body schema is the one that validates requests', async () => {
    const r = await get('/api/v1/openapi.json');
    expect(r.status).toBe(200);
    expect(r.body.openapi).toBe('3.0.3');
    const post = r.body.paths['/api/v1/models/{id}/controls/{name}'].post;
    expect(post.requestBody.content['application/json'].schema).toMatchObject({
      type: 'object',
      properties: { value: { type: 'number' } },
      required: ['value'],
      additionalProperties: false,
    });
    expect(Object.keys(post.responses).sort()).toEqual(['202', '400', '401', '403', '404', '413', '429']);
    // The gateway started, so every route it registered is in the document; the visualizer's among them.
    for (const p of ['/api/v1/me', '/api/v1/actors/{id}', '/api/v1/actors/{id}/machine', '/api/v1/actors/{id}/transitions'])
      expect(r.body.paths[p]?.get, p).toBeDefined();
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

describe('WebSocket feed', () => {
  type Msg = {
    topic?: string;
    ts?: number;
    snapshot?: boolean;
    values?: Record<string, number | null>;
    quality?: Record<string, string | null>;
    times?: Record<string, number | null>;
    op?: string;
    topics?: string[];
    error?: { code: string; message?: string };
  };

  async function connect(who: keyof typeof tokens | 'none') {
    const { default: WebSocket } = await import('ws');
    const url = `${base.replace('http', 'ws')}/ws${who === 'none' ? '' : `?token=${tokens[who]}`}`;
    const ws = new WebSocket(url);
    const messages: Msg[] = [];
    ws.on('message', (d) => messages.push(JSON.parse(d.toString()) as Msg));
    await new Promise<void>((res, rej) => {
      ws.once('open', () => res());
      ws.once('error', rej);
    });
    return { ws, messages };
  }

  it('a snapshot of each matching topic first, then coalesced deltas', async () => {
    const { ws, messages } = await connect('viewer');
    ws.send(JSON.stringify({ op: 'subscribe', topics: ['model/inv', 'channel/v1'] }));
    await eventually(() => messages.filter((m) => m.topic === 'model/inv' && !m.snapshot).length >= 3);
    expect(messages[0]).toEqual({ op: 'subscribed', topics: ['model/inv', 'channel/v1'] });
    const first = messages.findIndex((m) => m.topic === 'model/inv');
    expect(messages[first]).toMatchObject({ snapshot: true, values: { P: 12, twice: 24 } });
    expect(messages[first]!.quality).toBeUndefined(); // every value good
    const deltas = messages.filter((m) => m.topic === 'model/inv' && !m.snapshot);
    expect(deltas[0]!.values!.P).toBe(12);
    // Polls every 50 ms, deltas coalesced per 100 ms: not one message per poll.
    const span = deltas[deltas.length - 1]!.ts! - deltas[0]!.ts!;
    expect(deltas.length - 1).toBeLessThanOrEqual(Math.ceil(span / 100) + 1);
    await eventually(() => messages.some((m) => m.topic === 'channel/v1' && !m.snapshot && m.values?.['m:1'] === 12));
    ws.send(JSON.stringify({ op: 'unsubscribe', topics: ['model/*'] }));
    ws.send(JSON.stringify({ op: 'ping' }));
    await eventually(() => messages.some((m) => m.op === 'pong'));
    expect(messages.find((m) => m.op === 'unsubscribed')).toEqual({ op: 'unsubscribed', topics: ['model/big', 'model/inv'] });
    ws.send('not json');
    await eventually(() => messages.some((m) => m.error?.code === 'BAD_JSON'));
    // A pattern that cannot match anything is an error, not silence.
    ws.send(JSON.stringify({ op: 'subscribe', topics: ['model/nope'] }));
    await eventually(() => messages.some((m) => m.error?.code === 'NO_SUCH_TOPIC'));
    expect(messages.find((m) => m.error?.code === 'NO_SUCH_TOPIC')?.error?.message).toContain("'model/nope'");
    ws.close();
  });

  it('refuses an upgrade without a token', async () => {
    await expect(connect('none')).rejects.toThrow('401');
  });

  it('a client that does not read gets no more deltas, then the latest values as a snapshot when it drains', { timeout: 60_000 }, async () => {
    const { ws, messages } = await connect('viewer');
    const socket = (ws as unknown as { _socket: { pause(): void; resume(): void } })._socket;
    // It stops reading at once: a socket that has not read much keeps small kernel buffers
    // (the receive buffer grows only as the reader keeps up), so they fill within seconds.
    ws.send(JSON.stringify({ op: 'subscribe', topics: ['model/big'] }));
    socket.pause();
    const pausedAt = Date.now();
    // ~80 kB a delta, 10 a second: the kernel's buffers fill, then uWS's; the feed then marks
    // the client behind (GET /metrics) and sends it nothing more while it is.
    const counters = async () => {
      const text = (await get('/metrics', 'admin')).body as string; // admin: the viewer's rate limit is spent elsewhere
      const read = (name: string) => Number(new RegExp(`^${name} (\\d+)`, 'm').exec(text)?.[1]);
      return { behind: read('voltage_ws_clients_behind'), fell: read('voltage_ws_clients_fell_behind_total') };
    };
    await eventually(async () => (await counters()).behind === 1, 40_000, 600); // within the token's 2 requests/s
    expect((await counters()).fell).toBe(1);
    await new Promise((r) => setTimeout(r, 1_500)); // deltas it misses
    const produced = (Date.now() - pausedAt) / 100;
    socket.resume();
    // The snapshot it got on subscribing, some deltas queued before it fell behind, then a fresh snapshot.
    await eventually(() => messages.filter((m) => m.topic === 'model/big' && m.snapshot).length >= 2);
    const snap = messages.filter((m) => m.topic === 'model/big' && m.snapshot)[1]!;
    const received = messages.filter((m) => m.topic === 'model/big' && !m.snapshot).length;
    expect(received).toBeLessThan(produced);
    const latest = (await (await fetch(`${base}/api/v1/models/big`, { headers: { authorization: `Bearer ${tokens.viewer}` } })).json()) as {
      values: Array<{ name: string; value: number }>;
    };
    const x0 = latest.values.find((v) => v.name === wide(0))!.value;
    expect(x0 - snap.values![wide(0)]!).toBeLessThan(10);
    await eventually(async () => (await counters()).behind === 0, 10_000, 600);
    ws.close();
  });
});

describe('the gateway process', () => {
  const gatewayActor = async () =>
    (await get('/api/v1/actors', 'admin')).body.actors.find((x: { id: string }) => x.id === 'gateway') as {
      status: string;
      state: string;
      restarts: number;
      context: { port: number; pid: number };
    };

  it('serves from its own process; killed, it is restarted by its supervisor and serves again', { timeout: 30_000 }, async () => {
    const before = await gatewayActor();
    expect(before.context.pid).toBeGreaterThan(0);
    expect(before.context.pid).not.toBe(process.pid);
    const metrics = (await get('/metrics', 'admin')).body as string;
    expect(metrics).toMatch(/^voltage_gateway_process_resident_memory_bytes \d+/m);
    process.kill(before.context.pid, 'SIGKILL');
    // The old port may come back or not (port 0: any free one); the runtime says which.
    const after = await eventually(
      async () => {
        const port = rt.gatewayPort();
        base = `http://127.0.0.1:${port}`;
        const a = await gatewayActor().catch(() => undefined);
        return a && a.status === 'running' && a.context.pid !== before.context.pid ? a : undefined;
      },
      20_000,
      200,
    );
    expect(after.restarts).toBe(before.restarts + 1);
    expect(pidAlive(before.context.pid)).toBe(false);
    // It serves what the runtime knows again: actor counts and live values.
    const health = await get('/health');
    expect(health.body.actors.running).toBeGreaterThanOrEqual(5);
    await eventually(async () => (await get('/api/v1/models/inv', 'viewer')).body.values?.[1]?.value === 24);
  });
});

// Last: it stops this file's Redis.
describe('Redis unreachable', () => {
  it('every request answers within its deadline: /health degraded, values from memory marked stale, a control 503 REDIS_UNAVAILABLE', {
    timeout: 30_000,
  }, async () => {
    await server.stop();
    const timed = async (f: () => Promise<{ status: number; body: any }>) => {
      const started = Date.now();
      const r = await f();
      expect(Date.now() - started).toBeLessThan(2_500); // the 2 s deadline, plus a margin
      return r;
    };
    const health = await timed(() => get('/health'));
    expect(health.status).toBe(503);
    expect(health.body).toMatchObject({ status: 'degraded', redis: 'down' });
    expect(health.body.redisDownForMs).toBeGreaterThan(0);
    expect(Object.values(health.body.actors as Record<string, number>).reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(5);
    const model = await timed(() => get('/api/v1/models/inv', 'viewer'));
    expect(model.status).toBe(200);
    expect(model.body.source).toBe('memory');
    expect(model.body.values.every((v: { quality: string | null }) => v.quality !== 'good')).toBe(true);
    const control = await timed(() => post('/api/v1/models/inv/controls/limit', 'operator', '{"value":1}'));
    expect(control.status).toBe(503);
    expect(control.body.error.code).toBe('REDIS_UNAVAILABLE');
    for (const path of ['/api/v1/channels', '/api/v1/actors', '/metrics', '/api/v1/commands/cmd-1']) {
      const r = await timed(() => get(path, 'admin'));
      expect([200, 503]).toContain(r.status);
      if (r.status === 503) expect(['REDIS_UNAVAILABLE', 'DEADLINE_EXCEEDED']).toContain(r.body.error.code);
    }
  });
});
