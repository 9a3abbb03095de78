/**
 * Alarms end to end, against a private Redis and the running runtime: values
 * written through model_set (as a model's calculations would) or by a virtual
 * device whose readings go bad, the alarm actors raising and clearing, the
 * operator routes over real HTTP, the alarm/* WebSocket topic, and restarts of
 * the whole runtime in the middle of an on-delay and of a shelve.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { loadConfig } from '../../runtime/config/load.js';
import type { SiteConfig } from '../../runtime/config/site.js';
import { sha256 } from '../../runtime/gateway/http.js';
import type { AlarmEventEntry } from '../../runtime/redis/alarms.js';
import type { VoltageRedis } from '../../runtime/redis/voltageRedis.js';
import { startRuntime, type RunningRuntime } from '../../runtime/runtime.js';
import { eventually, quietLog, sleep, spawnRedis, wrapper, writeSite, type RedisServer } from '../helpers/servers.js';

const tokens = { viewer: 'v-token', otto: 'o-token', olga: 'o2-token' };

const SITE = `gateway:
  port: 0
  rateLimit: { perSecond: 100, burst: 200 }
  tokens:
    - { name: vera, role: viewer, sha256: ${sha256(tokens.viewer)} }
    - { name: otto, role: operator, sha256: ${sha256(tokens.otto)} }
    - { name: olga, role: operator, sha256: ${sha256(tokens.olga)} }
alarmPolicy:
  flood: { count: 5, windowMs: 600000 }
channels:
  - id: dead
    protocol: virtual
    pollMs: 100
    fault: { garbageRate: 1 }
    points:
      - { type: m, id: 1, name: temp, sim: { kind: constant, value: 20 } }
models:
  - id: bess1
    measurements: { temp: {}, P: {}, fan: {} }
  - id: grid
    measurements: { f: {}, load: {} }
  - id: pump
    measurements: { x: {}, y: {} }
  - id: sensor
    channel: dead
    measurements: { temp: {} }
alarms:
  - id: bess1.overtemp
    model: bess1
    when: { point: temp, above: 45, deadband: 2, onDelayMs: 600 }
    severity: major
    message: "Battery 1 at {value} °C (limit {limit})"
  - id: bess1.hot
    model: bess1
    when: { point: P, above: 100, onDelayMs: 1500 }
    severity: minor
  - id: bess1.fan
    model: bess1
    when: { point: fan, equals: 0 }
    severity: warning
    chattering: { count: 3, windowMs: 60000 }
  - id: grid.freq
    model: grid
    when: { point: f, below: 49.5, offDelayMs: 800 }
    severity: critical
  - id: grid.overload
    model: grid
    when: { point: load, above: 100 }
    severity: warning
    escalateAfterMs: 700
  - id: pump.high
    model: pump
    when: { point: x, above: 10 }
    suppressWhen: "pump.y == 0"
  - id: pump.stale
    model: pump
    when: { point: y, staleMs: 1200 }
  - id: sensor.comm
    model: sensor
    when: { point: temp, quality: [bad, comm-failure] }
    severity: warning
`;

let server: RedisServer;
let site: SiteConfig;
let rt: RunningRuntime;
let bus: VoltageRedis;
let base = '';

async function start(): Promise<void> {
  rt = await startRuntime(site, { redisUrl: server.url, log: quietLog });
  base = `http://127.0.0.1:${await eventually(() => rt.gatewayPort())}`;
}

beforeAll(async () => {
  server = await spawnRedis();
  site = loadConfig(writeSite({ 'site.yaml': SITE }));
  await start();
  bus = wrapper(server);
});
afterAll(async () => {
  await rt.stop();
  await bus.close();
  await server.stop();
});

async function call(method: string, path: string, who?: keyof typeof tokens, body?: unknown) {
  const headers: Record<string, string> = {};
  if (who) headers.authorization = `Bearer ${tokens[who]}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const r = await fetch(base + path, { method, headers, body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await r.text();
  let parsed: any;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = text;
  }
  return { status: r.status, body: parsed, type: r.headers.get('content-type') };
}
const set = (model: string, name: string, value: number) => bus.telemetry.modelSet(model, Date.now(), [{ name, value, quality: 'good' }]);
const state = async (id: string) => (await bus.alarms.get(id))?.state;
async function eventsOf(id: string): Promise<AlarmEventEntry[]> {
  return (await bus.alarms.events(1000, undefined, id)).reverse();
}

describe('alarms through the runtime', () => {
  it('threshold with deadband and on-delay, through to the WebSocket', async () => {
    const ws = new WebSocket(`${base.replace('http', 'ws')}/ws?token=${tokens.viewer}`);
    const seen: any[] = [];
    ws.on('message', (m) => seen.push(JSON.parse(String(m))));
    await new Promise((r) => ws.once('open', r));
    ws.send(JSON.stringify({ op: 'subscribe', topics: ['alarm/*'] }));
    await eventually(() => seen.some((m) => m.topic === 'alarm/all' && m.snapshot));

    await set('bess1', 'temp', 40);
    await set('bess1', 'temp', 46);
    const t0 = Date.now();
    await sleep(300);
    expect(await state('bess1.overtemp')).toBe('normal'); // still within the on-delay
    await eventually(async () => (await state('bess1.overtemp')) === 'unacknowledged', 3_000);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(550);
    const change = await eventually(() => seen.find((m) => m.topic === 'alarm/all' && m.alarm?.id === 'bess1.overtemp' && m.alarm.state === 'unacknowledged'));
    expect(change.alarm).toMatchObject({ severity: 'major', active: true, message: 'Battery 1 at 46 °C (limit 45)', group: 'bess1.overtemp' });
    // Within the deadband (above 43): stays raised; below it: returns.
    await set('bess1', 'temp', 44);
    await sleep(300);
    expect(await state('bess1.overtemp')).toBe('unacknowledged');
    await set('bess1', 'temp', 42);
    await eventually(async () => (await state('bess1.overtemp')) === 'returnedUnack', 3_000);
    ws.close();

    const list = await call('GET', '/api/v1/alarms?active=true&model=bess1', 'viewer');
    expect(list.body.alarms.map((a: { id: string }) => a.id)).toEqual(['bess1.overtemp']);
    const one = await call('GET', '/api/v1/alarms/bess1.overtemp', 'viewer');
    expect(one.body.definition).toMatchObject({ model: 'bess1', severity: 'major' });
    expect(one.body.history.map((h: { why: string }) => h.why)).toEqual(['condition cleared', 'raised']);
  });

  it('the off-delay: a return shorter than it does not clear', async () => {
    await set('grid', 'f', 49.2);
    await eventually(async () => (await state('grid.freq')) === 'unacknowledged', 3_000);
    await set('grid', 'f', 50);
    await sleep(300);
    await set('grid', 'f', 49.3); // back before the off-delay ran out
    await sleep(900);
    expect(await state('grid.freq')).toBe('unacknowledged');
    await set('grid', 'f', 50);
    await sleep(300);
    expect(await state('grid.freq')).toBe('unacknowledged');
    await eventually(async () => (await state('grid.freq')) === 'returnedUnack', 3_000);
    expect((await eventsOf('grid.freq')).map((e) => e.to)).toEqual(['unacknowledged', 'returnedUnack']);
  });

  it('a device whose readings go bad raises its comm-failure alarm', async () => {
    await eventually(async () => (await state('sensor.comm')) === 'unacknowledged', 5_000);
    expect((await eventsOf('sensor.comm'))[0]).toMatchObject({ event: 'CONDITION_ON', who: 'alarm/sensor', severity: 'warning' });
  });

  it('two operators acknowledge at once: one 200, one 409', async () => {
    const [a, b] = await Promise.all([
      call('POST', '/api/v1/alarms/sensor.comm/ack', 'otto', { comment: 'seen' }),
      call('POST', '/api/v1/alarms/sensor.comm/ack', 'olga', { comment: 'seen too' }),
    ]);
    expect([a.status, b.status].sort()).toEqual([200, 409]);
    const lost = a.status === 409 ? a : b;
    expect(lost.body.error.message).toContain('acknowledged');
    expect((await eventsOf('sensor.comm')).filter((e) => e.event === 'ACK')).toHaveLength(1);
  });

  it('every operator route: 400, 401, 403, 404, 409', async () => {
    const path = '/api/v1/alarms/grid.freq';
    expect((await call('POST', `${path}/ack`, undefined, {})).status).toBe(401);
    expect((await call('POST', `${path}/ack`, 'viewer', {})).status).toBe(403);
    expect((await call('POST', '/api/v1/alarms/nope/ack', 'otto', {})).status).toBe(404);
    expect((await call('POST', `${path}/dance`, 'otto', {})).status).toBe(404);
    const bad = await call('POST', `${path}/ack`, 'otto', { comment: 'x', bogus: 1 });
    expect(bad.status).toBe(400);
    expect((await call('POST', `${path}/shelve`, 'otto', {})).body.error.message).toContain('needs a comment');
    expect((await call('POST', `${path}/ack`, 'otto', { durationMs: 5 })).status).toBe(400);
    expect((await call('POST', `${path}/ack`, 'otto', '{not json')).status).toBe(400);
    const notAllowed = await call('POST', `${path}/reset`, 'otto', {});
    expect(notAllowed.status).toBe(409);
    expect(notAllowed.body.error.message).toBe("alarm 'grid.freq' is returnedUnack: reset is not allowed in state returnedUnack");
    for (const [action, body, to] of [
      ['ack', {}, 'normal'],
      ['out-of-service', { comment: 'maintenance' }, 'outOfService'],
      ['in-service', {}, 'normal'],
      ['suppress', { comment: 'by design' }, 'suppressed'],
      ['unsuppress', {}, 'normal'],
      ['shelve', { comment: 'noisy', durationMs: 60_000 }, 'shelved'],
      ['unshelve', {}, 'normal'],
    ] as const) {
      const r = await call('POST', `${path}/${action}`, 'otto', body);
      expect([action, r.status, r.body.state]).toEqual([action, 200, to]);
      expect((await call('POST', `${path}/${action}`, 'olga', body)).status, `${action} again`).toBe(409);
    }
    const audit = await bus.commands.auditOf('grid.freq');
    expect(audit.filter((e) => e.outcome === 'accepted').map((e) => e.event)).toContain('alarm.shelve');
  });

  it('events paged and as CSV; stats', async () => {
    const page = await call('GET', '/api/v1/alarms/events?limit=2', 'viewer');
    expect(page.body.events).toHaveLength(2);
    const next = await call('GET', `/api/v1/alarms/events?limit=2&before=${page.body.next}`, 'viewer');
    expect(next.body.events[0].entryId < page.body.next).toBe(true);
    const r = await fetch(`${base}/api/v1/alarms/events?limit=5`, { headers: { authorization: `Bearer ${tokens.viewer}`, accept: 'text/csv' } });
    expect(r.headers.get('content-type')).toContain('text/csv');
    expect((await r.text()).split('\n')[0]).toBe('time,id,event,from,to,severity,who,why,value,version,group');
    const stats = await call('GET', '/api/v1/alarms/stats', 'viewer');
    expect(stats.body).toMatchObject({ flood: { active: false, count: 5 }, total: 8 });
    expect(stats.body.top10.length).toBeGreaterThan(0);
    expect((await call('GET', '/api/v1/alarms/events?before=x', 'viewer')).status).toBe(400);
  });

  it('the list refuses a filter it cannot apply rather than answering nothing or everything', async () => {
    const bad = await call('GET', '/api/v1/alarms?state=bogus', 'viewer');
    expect([bad.status, bad.body.error.code]).toEqual([400, 'BAD_QUERY']);
    expect(bad.body.error.message).toContain('returnedUnack');
    const maybe = await call('GET', '/api/v1/alarms?active=maybe', 'viewer');
    expect([maybe.status, maybe.body.error.code]).toEqual([400, 'BAD_QUERY']);
    expect((await call('GET', '/api/v1/alarms?state=normal,unacknowledged&active=true', 'viewer')).status).toBe(200);
  });

  it('chattering: raised 3 times within a minute; flood: more than 5 new alarms in 10 minutes', async () => {
    for (let i = 0; i < 3; i++) {
      await set('bess1', 'fan', 0);
      await eventually(async () => (await state('bess1.fan')) === 'unacknowledged', 3_000);
      await set('bess1', 'fan', 1);
      await eventually(async () => (await state('bess1.fan')) === 'returnedUnack', 3_000);
    }
    const one = await call('GET', '/api/v1/alarms/bess1.fan', 'viewer');
    expect(one.body.chattering).toBe(true);
    expect(one.body.group).toBe('bess1.overtemp'); // first-out: raised within groupWindowMs of the battery's first alarm
    expect(one.body.history.filter((h: { event: string; to: string }) => h.event === 'CONDITION_ON' && h.to === 'unacknowledged')).toHaveLength(3);
    const stats = await call('GET', '/api/v1/alarms/stats', 'viewer');
    expect(stats.body.flood).toMatchObject({ active: true, newInWindow: 7 }); // pump.stale too: its point never had a value
    expect(stats.body.timeInFloodMs24h).toBeGreaterThan(0);
    expect(stats.body.top10[0]).toEqual({ id: 'bess1.fan', count: 3 });
    expect(stats.body.chattering).toEqual(['bess1.fan']);
    const metrics = await call('GET', '/metrics', 'viewer');
    expect(metrics.body).toContain('voltage_alarm_flood 1');
    expect(metrics.body).toMatch(/voltage_alarms_active\{severity="warning"\} [1-9]/);
    await set('bess1', 'fan', 1);
  });

  it('escalation: unacknowledged for escalateAfterMs, one severity up each time, until acknowledged', async () => {
    await set('grid', 'load', 150);
    await eventually(async () => (await bus.alarms.get('grid.overload'))?.severity === 'major', 4_000);
    const history = await eventsOf('grid.overload');
    const esc = history.filter((e) => e.event === 'TICK');
    expect(esc.map((e) => [e.why, e.severity])).toEqual([
      ['escalated to minor', 'minor'],
      ['escalated to major', 'major'],
    ]);
    // The deadlines are absolute: raise + 700, raise + 1400 (not 700 after each late tick).
    expect(esc[0]!.time - history[0]!.time).toBeGreaterThanOrEqual(700);
    expect(esc[1]!.time - history[0]!.time).toBeGreaterThanOrEqual(1400);
    expect((await call('POST', '/api/v1/alarms/grid.overload/ack', 'otto', {})).body).toMatchObject({ state: 'acknowledged', severity: 'major' });
    await sleep(900);
    expect((await bus.alarms.get('grid.overload'))?.severity).toBe('major');
    await set('grid', 'load', 10);
    await eventually(async () => (await state('grid.overload')) === 'normal', 3_000);
    expect((await bus.alarms.get('grid.overload'))?.severity).toBe('warning');
  });

  it('voltage alarms --active prints the active alarms', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, ['runtime/bin/voltage.js', 'alarms', '--active'], {
      env: { ...process.env, REDIS_URL: server.url },
    });
    const lines = stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^ALARM\s+STATE\s+SEVERITY\s+FOR\s+MESSAGE\s+NOTES$/);
    expect(lines.slice(1).map((l) => l.split(/\s+/).slice(0, 3))).toEqual([
      ['bess1.fan', 'returnedUnack', 'warning'],
      ['bess1.overtemp', 'returnedUnack', 'major'],
      ['pump.stale', 'unacknowledged', 'minor'],
      ['sensor.comm', 'acknowledged', 'warning'],
    ]);
  }, 20_000);

  it('a restart in the middle of an on-delay: the deadline holds, one raise only', async () => {
    await set('bess1', 'P', 150);
    await eventually(async () => JSON.parse((await bus.alarms.filters(['bess1.hot']))[0] ?? '{}').pendingUntil > 0, 3_000);
    const deadline = JSON.parse((await bus.alarms.filters(['bess1.hot']))[0]!).pendingUntil as number;
    await rt.stop();
    await sleep(300);
    await start();
    await eventually(async () => (await state('bess1.hot')) === 'unacknowledged', 5_000);
    const raised = (await eventsOf('bess1.hot')).filter((e) => e.why === 'raised');
    expect(raised).toHaveLength(1);
    expect(raised[0]!.time).toBeGreaterThanOrEqual(deadline);
    expect(raised[0]!.time).toBeLessThan(deadline + 1_500); // not a new on-delay from the restart
  });

  it('a restart in the middle of a shelve: the shelve expires on time, no duplicate raise, the ack kept', async () => {
    await call('POST', '/api/v1/alarms/bess1.hot/ack', 'otto', {});
    expect(await state('bess1.hot')).toBe('acknowledged');
    const shelved = await call('POST', '/api/v1/alarms/bess1.hot/shelve', 'otto', { comment: 'work on the pack', durationMs: 800 });
    expect(shelved.body).toMatchObject({ state: 'shelved' });
    await rt.stop();
    await sleep(1_000); // the shelve runs out while nothing runs
    await start();
    await eventually(async () => (await state('bess1.hot')) === 'unacknowledged', 5_000);
    const history = await eventsOf('bess1.hot');
    expect(history.map((e) => e.why)).toEqual(['raised', 'ack', 'work on the pack', 'shelve expired']);
    // The other alarms resumed as they were: no duplicate raise anywhere.
    expect(await state('sensor.comm')).toBe('acknowledged');
    expect((await eventsOf('bess1.overtemp')).filter((e) => e.why === 'raised')).toHaveLength(1);
  });

  it('a missed notification: after the subscriber reconnects, the actor re-reads the values and raises', async () => {
    expect(await state('grid.freq')).toBe('normal');
    // A value written with no notification (as if it had been published while the subscriber was away) …
    await bus.core.client.hset('modsrv:grid:measurement', 'f', '49.000000');
    await sleep(300);
    expect(await state('grid.freq')).toBe('normal');
    // … is seen once the subscriber connection comes back.
    await bus.core.client.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
    await eventually(async () => (await state('grid.freq')) === 'unacknowledged', 5_000);
    expect((await eventsOf('grid.freq')).filter((e) => e.why === 'raised')).toHaveLength(2); // the first test's raise, and this one
  });

  it('suppression by design while its condition holds; staleness when a point gets no new value', async () => {
    await set('pump', 'y', 0);
    await set('pump', 'x', 20);
    await eventually(async () => (await state('pump.high')) === 'suppressed', 3_000);
    await sleep(200);
    expect(await state('pump.high')).toBe('suppressed'); // not announced while suppressed
    await set('pump', 'y', 1); // the reason is gone: unsuppressed, and the condition still holds
    await eventually(async () => (await state('pump.high')) === 'unacknowledged', 3_000);
    expect((await eventsOf('pump.high')).map((e) => [e.event, e.to])).toEqual([
      ['SUPPRESS', 'suppressed'],
      ['CONDITION_ON', 'suppressed'],
      ['UNSUPPRESS', 'unacknowledged'],
    ]);
    // Raised at the start (y never had a value), cleared by the values just written, stale again 1200 ms after the last.
    await eventually(async () => (await state('pump.stale')) === 'returnedUnack', 3_000);
    await call('POST', '/api/v1/alarms/pump.stale/ack', 'otto', {});
    expect(await state('pump.stale')).toBe('normal');
    await eventually(async () => (await state('pump.stale')) === 'unacknowledged', 3_000);
    await set('pump', 'y', 2);
    await eventually(async () => (await state('pump.stale')) === 'returnedUnack', 3_000);
  });
});
