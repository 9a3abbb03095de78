/**
 * The visualizer's API over real HTTP and WebSocket against a running runtime
 * and a private Redis: one actor, its machine graph, its transitions journal
 * (kept across a restart of the runtime, bounded), and the `actor/*` topics.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { loadConfig } from '../../runtime/config/load.js';
import { sha256 } from '../../runtime/gateway/http.js';
import { TRANSITIONS_MAXLEN } from '../../runtime/redis/actors.js';
import { KEYS } from '../../runtime/redis/keys.js';
import { startRuntime, type RunningRuntime } from '../../runtime/runtime.js';
import { eventually, quietLog, rawClient, spawnRedis, wrapper, writeSite, type RedisServer } from '../helpers/servers.js';

let server: RedisServer;
let rt: RunningRuntime;
let base = '';
const token = 'viewer-token';
const siteDir = writeSite({
  'site.yaml': `${readFileSync('test/fixtures/flaky-site/site.yaml', 'utf8')}
gateway:
  port: 0
  tokens:
    - { name: vera, role: viewer, sha256: ${sha256(token)} }
rules:
  - id: huge
    trigger: { onChange: [meter.n] }
    when: "meter.n > 1000000000"
    then:
      - notify: { message: "n is {meter.n}" }
`,
});

async function start(): Promise<void> {
  rt = await startRuntime(loadConfig(siteDir), { redisUrl: server.url, log: quietLog });
  base = `http://127.0.0.1:${await eventually(() => rt.gatewayPort())}`;
}

beforeAll(async () => {
  server = await spawnRedis();
  await start();
});
afterAll(async () => {
  await rt.stop();
  await server.stop();
});

async function get(path: string): Promise<{ status: number; body: any }> {
  const r = await fetch(base + path, { headers: { authorization: `Bearer ${token}` } });
  return { status: r.status, body: await r.json() };
}

describe('visualizer API', () => {
  it('GET /api/v1/actors/{id}: one actor, its id with or without an encoded slash', async () => {
    const a = await eventually(async () => {
      const r = await get('/api/v1/actors/channel/good1');
      return r.body.status === 'running' && r.body.state === 'polling' ? r.body : undefined;
    });
    expect(a).toMatchObject({ id: 'channel/good1', kind: 'channel', parent: 'channels', active: ['', 'polling'], restarts: 0 });
    expect((await get('/api/v1/actors/channel%2Fgood1')).body.id).toBe('channel/good1');
    expect((await get('/api/v1/actors/root')).body).toMatchObject({ id: 'root', kind: 'supervisor' });
    expect((await get('/api/v1/actors/channel/nope')).status).toBe(404);
  });

  it('GET /api/v1/actors/{id}/machine: the graph of its kind, laid out; a supervisor has none', async () => {
    const m = await get('/api/v1/actors/model/meter/machine');
    expect(m.status).toBe(200);
    const ids = m.body.graph.states.map((s: { id: string }) => s.id);
    expect(ids).toEqual(['', 'loading', 'ready', 'ready.idle', 'ready.calculating', 'ready.retrying']);
    expect(Object.keys(m.body.graph.boxes).sort()).toEqual([...ids].sort());
    expect(m.body.graph.transitions.filter((t: { target: string | null }) => t.target !== null)).toHaveLength(m.body.graph.edges.length);
    // Every kind that runs a machine has its graph: a rule's too (cloud links and history writers likewise).
    const rule = await eventually(async () => {
      const r = await get('/api/v1/actors/rule/huge/machine');
      return r.status === 200 ? r.body : undefined;
    });
    expect(rule.graph.states.map((s: { id: string }) => s.id)).toEqual(['', 'idle', 'holding', 'active', 'cooldown', 'disabled']);
    const sup = await get('/api/v1/actors/channels/machine');
    expect(sup.status).toBe(404);
    expect(sup.body.error.message).toContain('runs no machine');
  });

  it('GET /api/v1/actors/{id}/transitions: newest first, with the error that failed it, kept across a restart of the runtime', async () => {
    const failed = await eventually(async () => {
      const t = (await get('/api/v1/actors/channel/flaky/transitions?count=200')).body.transitions as Array<{
        event: string;
        error?: string;
        ts: number;
        from: unknown;
        to: unknown;
      }>;
      return t.filter((x) => x.event === 'failed').length >= 2 ? t : undefined;
    });
    expect(failed.find((x) => x.event === 'failed')).toMatchObject({ from: 'polling', to: null, error: expect.stringContaining('crashed after 3 polls') });
    expect(failed.some((x) => x.event === 'xstate.init' && x.to === 'connecting')).toBe(true);
    expect(failed.map((x) => x.ts)).toEqual([...failed.map((x) => x.ts)].sort((a, b) => b - a));
    const oldest = failed.at(-1)!;
    await rt.stop();
    await start();
    const after = (await get('/api/v1/actors/channel/flaky/transitions?count=200')).body.transitions as Array<{ ts: number; event: string }>;
    expect(after).toContainEqual(expect.objectContaining({ ts: oldest.ts, event: oldest.event }));
  });

  it('the journal is bounded near its cap', async () => {
    const raw = rawClient(server);
    const bus = wrapper(server);
    for (let i = 0; i < 1_000; i += 1) await bus.actors.appendTransition('test/bounded', { ts: i, event: 'e', from: '"a"', to: '"b"' });
    // MAXLEN ~ trims whole stream nodes (100 entries each by default): at most a node over.
    expect(await raw.xlen(KEYS.actorTransitions('test/bounded'))).toBeLessThanOrEqual(TRANSITIONS_MAXLEN + 100);
    expect((await bus.actors.transitions('test/bounded', 3)).map((t) => t.ts)).toEqual([999, 998, 997]);
    raw.disconnect();
    await bus.close();
  });

  it('a report that carries a transition writes the state and the journal entry in one call, bounded alike', async () => {
    const raw = rawClient(server);
    const bus = wrapper(server);
    for (let i = 0; i < 1_000; i += 1)
      await bus.actors.report('test/reported', { state: `"s${i}"` }, { ts: i, event: 'CONDITION', from: `"s${i - 1}"`, to: `"s${i}"` });
    expect(await bus.actors.report('test/reported', { status: 'running' })).toBe(1_001);
    expect(await raw.hget(KEYS.actor('test/reported'), 'state')).toBe('"s999"');
    expect(await raw.xlen(KEYS.actorTransitions('test/reported'))).toBeLessThanOrEqual(TRANSITIONS_MAXLEN + 100);
    // The report without one journaled nothing more.
    expect(await bus.actors.transitions('test/reported', 2)).toEqual([
      { ts: 999, event: 'CONDITION', from: '"s998"', to: '"s999"' },
      { ts: 998, event: 'CONDITION', from: '"s997"', to: '"s998"' },
    ]);
    await bus.actors.report('test/reported', { status: 'failed' }, { ts: 1_000, event: 'failed', from: '"s999"', to: '', error: 'boom' });
    expect((await bus.actors.transitions('test/reported', 1))[0]).toEqual({ ts: 1_000, event: 'failed', from: '"s999"', to: '', error: 'boom' });
    raw.disconnect();
    await bus.close();
  });

  it('WebSocket actor/*: a snapshot first, then each change of status (backoff, running again)', async () => {
    const ws = new WebSocket(`${base.replace('http', 'ws')}/ws?token=${token}`);
    const seen: Array<{ topic: string; snapshot?: boolean; actor?: { id: string; status: string; backoffUntil: number } }> = [];
    ws.on('message', (m) => seen.push(JSON.parse(String(m))));
    await new Promise((r) => ws.once('open', r));
    ws.send(JSON.stringify({ op: 'subscribe', topics: ['actor/channel/*'] }));
    await eventually(() => seen.some((m) => m.topic === 'actor/channel/good2'));
    const flaky = () => seen.filter((m) => m.topic === 'actor/channel/flaky').map((m) => m.actor!);
    // Each topic's first message is its snapshot, marked as every topic's is; the changes after are not.
    await eventually(() => flaky().length >= 2);
    const ofFlaky = seen.filter((m) => m.topic === 'actor/channel/flaky');
    expect(ofFlaky[0]!.snapshot).toBe(true);
    expect(ofFlaky.slice(1).every((m) => m.snapshot === undefined)).toBe(true);
    await eventually(() => {
      const f = flaky();
      const b = f.findIndex((a) => a.status === 'backoff' && a.backoffUntil > 0);
      return b >= 0 && f.slice(b + 1).some((a) => a.status === 'running');
    }, 5_000);
    ws.close();
  });
});
