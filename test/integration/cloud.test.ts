/**
 * The cloud link against a real mosquitto (private, free port) and a private
 * Redis: what it publishes and in which order (a broker killed with SIGKILL
 * and restarted on the same port, and the link's other faults, are in
 * test/faults/); commands from the cloud confirmed,
 * rejected and malformed; two links at once, one of them down; alarm
 * transitions in the same sequence; TLS with a test CA made by openssl.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { loadConfig } from '../../runtime/config/load.js';
import { freePort } from '../../runtime/redisServer.js';
import { startRuntime } from '../../runtime/runtime.js';
import { statusReport } from '../../runtime/status.js';
import { spawnMosquitto, type Mosquitto } from '../helpers/mosquitto.js';
import { makeTestCerts } from '../helpers/testCerts.js';
import { checkOrder, dataSeqs, watchBroker } from '../helpers/mqttWatch.js';
import { eventually, quietLog, sleep, writeSite } from '../helpers/servers.js';
import { privateRedisSuite } from '../helpers/suite.js';
import { expectNothingPending } from '../faults/cloud.js';

const t = privateRedisSuite();
let broker: Mosquitto;
beforeAll(async () => {
  broker = await spawnMosquitto();
});
afterAll(async () => {
  await broker.stop();
});

const SITE = `channels:
  - id: v1
    protocol: virtual
    pollMs: 40
    points:
      - { type: m, id: 1, sim: { kind: counter, start: 1, step: 1 } }
      - { type: a, id: 1, min: 0, max: 100 }
models:
  - id: inv
    measurements: { P: {} }
    controls: { limit: {} }
    mapping: { P: "v1:m:1", limit: "v1:a:1" }
`;

const nothingPending = () => expectNothingPending(t);

const watch = (url: string, topic: string, clientId?: string, tls: { ca?: Buffer } = {}) => watchBroker(t.cleanups, url, topic, clientId, tls);

const link = (id: string, url: string, extra = '') => `    - id: ${id}
      url: "${url}"
      reconnect: { minBackoffMs: 200, maxBackoffMs: 1000 }
${extra}`;

describe('cloud link over MQTT', () => {
  it('publishes one message per model per poll, in order, seq from 1 without gaps, with a retained online status', async () => {
    const w = await watch(broker.url, 'voltage/site/#');
    t.running = await startRuntime(loadConfig(writeSite({ 'site.yaml': SITE, 'cloud.yaml': `cloud:\n  links:\n${link('main', broker.url)}` })), {
      redisUrl: t.server.url,
      log: quietLog,
    });
    await eventually(() => dataSeqs(w.got).length >= 20);
    const data = w.got.filter((m) => m.topic === 'voltage/site/data/inv');
    expect(data[0]!.body).toMatchObject({ seq: 1, model: 'inv', values: { P: expect.any(Number) } });
    expect(typeof data[0]!.body.ts).toBe('number');
    expect(data[0]!.body.quality).toBeUndefined();
    expect(checkOrder(dataSeqs(w.got))).toMatchObject({ duplicates: 0 });
    // The counter's values arrive in poll order too.
    const values = data.map((m) => (m.body.values as { P: number }).P);
    expect(values).toEqual([...values].sort((a, b) => a - b));
    const status = w.got.find((m) => m.topic === 'voltage/site/status');
    expect(status?.body).toMatchObject({ status: 'online' });
  });

  it('the runtime stopped while the broker is down: the next incarnation resumes the seq from Redis and sends the backlog', async () => {
    const b = await spawnMosquitto();
    t.cleanups.push(() => b.stop());
    const w = await watch(b.url, 'voltage/site/data/#', 'durable-watcher-2');
    const cfg = loadConfig(writeSite({ 'site.yaml': SITE, 'cloud.yaml': `cloud:\n  links:\n${link('main', b.url)}` }));
    t.running = await startRuntime(cfg, { redisUrl: t.server.url, log: quietLog });
    await eventually(() => dataSeqs(w.got).length >= 10);
    await sleep(1_500);
    await b.kill();
    await sleep(1_000);
    await t.running.stop();
    t.running = undefined;
    const b2 = await spawnMosquitto({ port: b.port, dir: b.dir });
    t.cleanups.push(() => b2.stop());
    t.running = await startRuntime(cfg, { redisUrl: t.server.url, log: quietLog });
    const backlog = (await t.bus.telemetry.outboxStats()).groups.find((g) => g.name === 'cloud:main');
    await eventually(async () => {
      const g = (await t.bus.telemetry.outboxStats()).groups.find((x) => x.name === 'cloud:main');
      return g !== undefined && g.pending === 0 && (g.lag ?? 0) === 0 && dataSeqs(w.got).length > 40;
    }, 15_000);
    await t.running.stop();
    t.running = undefined;
    // The first stop (broker down) left its batches pending; this one (broker up) leaves nothing.
    await nothingPending();
    const lastSeq = Number(await t.raw.get('cloud:main:seq'));
    await eventually(() => Math.max(...dataSeqs(w.got)) >= lastSeq, 5_000);
    expect(backlog).toBeDefined();
    expect(checkOrder(dataSeqs(w.got)).unique).toBe(lastSeq);
  }, 30_000);

  it('alarm transitions go to {prefix}/alarm in the same sequence as the data: one seq, in order, without gaps', async () => {
    const w = await watch(broker.url, 'voltage/site/#');
    const site = `channels:
  - id: v1
    protocol: virtual
    pollMs: 40
    points:
      - { type: m, id: 1, sim: { kind: square, low: 0, high: 10, periodMs: 600 } }
models:
  - id: inv
    measurements: { P: {} }
    mapping: { P: "v1:m:1" }
alarms:
  - id: inv.high
    model: inv
    when: { point: P, above: 5 }
    severity: minor
`;
    t.running = await startRuntime(loadConfig(writeSite({ 'site.yaml': site, 'cloud.yaml': `cloud:\n  links:\n${link('main', broker.url)}` })), {
      redisUrl: t.server.url,
      log: quietLog,
    });
    await eventually(() => w.got.filter((m) => m.topic === 'voltage/site/alarm').length >= 3, 8_000);
    const alarms = w.got.filter((m) => m.topic === 'voltage/site/alarm');
    expect(alarms[0]!.body).toMatchObject({
      seq: expect.any(Number),
      ts: expect.any(Number),
      alarm: 'inv.high',
      severity: 'minor',
      active: true,
      event: expect.any(String),
    });
    // Raised, returned, raised again: each transition once, in the order of the alarm's versions.
    const versions = alarms.map((m) => m.body.version as number);
    expect(versions).toEqual(versions.map((_, i) => versions[0]! + i));
    // Raise and return alternate, from the first raise: the link's consumer group is made at the site's load
    // (cloudKind.outbox, synced at load), before any channel polls, so nothing raised before the link started is missing.
    const tos = alarms.map((m) => m.body.to as string);
    expect(tos[0]).toBe('unacknowledged');
    for (const [i, to] of tos.entries()) {
      expect(['unacknowledged', 'returnedUnack']).toContain(to);
      if (i > 0) expect(to).not.toBe(tos[i - 1]);
    }
    // One sequence over data and alarms: in order, no gap, no duplicate.
    const seqs = w.got.filter((m) => m.topic.includes('/data/') || m.topic.endsWith('/alarm')).map((m) => m.body.seq as number);
    expect(checkOrder(seqs)).toMatchObject({ duplicates: 0 });
    // Each alarm comes right after the data message of the poll that crossed the limit.
    const i = w.got.indexOf(alarms[0]!);
    const before = w.got.slice(0, i).filter((m) => m.topic.includes('/data/'));
    expect((before[before.length - 1]!.body.values as { P: number }).P).toBe(10);
  });

  it('TLS: an mqtts:// link with the test CA configured uplinks; one without it is refused by certificate and keeps its backlog', async () => {
    const certs = makeTestCerts();
    const b = await spawnMosquitto({ tls: { cafile: certs.ca, certfile: certs.cert, keyfile: certs.key } });
    t.cleanups.push(() => b.stop());
    expect(b.url).toMatch(/^mqtts:/);
    const w = await watch(b.url, 'sec/#', undefined, { ca: readFileSync(certs.ca) });
    const cloud = `cloud:\n  links:\n${link('sec', b.url, `      prefix: "sec/{site}"\n      tls: { ca: "${certs.ca}" }\n`)}${link('nocert', b.url, '      prefix: "nocert/{site}"\n')}`;
    t.running = await startRuntime(loadConfig(writeSite({ 'site.yaml': SITE, 'cloud.yaml': cloud })), { redisUrl: t.server.url, log: quietLog });
    await eventually(() => dataSeqs(w.got).length >= 10);
    expect(checkOrder(dataSeqs(w.got)).duplicates).toBe(0);
    const refused = await eventually(async () => {
      const ctx = JSON.parse((await t.raw.hget('actor:cloud/nocert', 'context')) ?? '{}') as { lastError?: string | null };
      return ctx.lastError ?? undefined;
    });
    expect(refused).toMatch(/certificate/i);
    const g = (await t.bus.telemetry.outboxStats()).groups.find((x) => x.name === 'cloud:nocert');
    expect((g?.lag ?? 0) + (g?.pending ?? 0)).toBeGreaterThan(0);
  });

  it('a command from the cloud is confirmed end to end; one out of limits is rejected; a malformed one gets an error; neither writes a command', async () => {
    const w = await watch(broker.url, 'voltage/site/+/+/result');
    const r = await watch(broker.url, 'voltage/site/read/result');
    t.running = await startRuntime(
      loadConfig(writeSite({ 'site.yaml': SITE, 'cloud.yaml': `cloud:\n  links:\n${link('ops', broker.url, '      downlink: { commands: true }\n')}` })),
      { redisUrl: t.server.url, log: quietLog },
    );
    await eventually(async () => (await t.raw.hget('actor:cloud/ops', 'state'))?.includes('online'));
    await w.client.publishAsync('voltage/site/cmd', JSON.stringify({ id: 'c1', model: 'inv', name: 'limit', value: 42, timeoutMs: 5_000 }), { qos: 1 });
    const ok = await eventually(() => w.got.find((m) => m.topic === 'voltage/site/cmd/c1/result'));
    expect(ok.body).toMatchObject({ id: 'c1', status: 'confirmed', readback: 42 });
    const record = await t.bus.commands.command(ok.body.command as string);
    expect(record).toMatchObject({ source: 'cloud:ops', status: 'confirmed' });
    // The same id again (a redelivery, a cloud that retries), even with another value: nothing runs twice, the first answer comes again.
    await w.client.publishAsync('voltage/site/cmd', JSON.stringify({ id: 'c1', model: 'inv', name: 'limit', value: 43, timeoutMs: 5_000 }), { qos: 1 });
    await eventually(() => w.got.filter((m) => m.topic === 'voltage/site/cmd/c1/result').length === 2);
    expect(w.got.filter((m) => m.topic === 'voltage/site/cmd/c1/result').map((m) => m.body)).toEqual([ok.body, ok.body]);
    expect(await t.raw.keys('command:*')).toEqual([`command:${ok.body.command as string}`]);
    const commandsBefore = (await t.raw.keys('command:*')).length;
    await w.client.publishAsync('voltage/site/cmd', JSON.stringify({ id: 'c2', model: 'inv', name: 'limit', value: 150 }), { qos: 1 });
    await w.client.publishAsync('voltage/site/cmd', 'not json', { qos: 1 });
    await w.client.publishAsync('voltage/site/cmd', JSON.stringify({ id: 'c3', model: 'inv', name: 'limit' }), { qos: 1 });
    const rejected = await eventually(() => w.got.find((m) => m.topic === 'voltage/site/cmd/c2/result'));
    expect(rejected.body).toMatchObject({ status: 'rejected', message: expect.stringContaining('above the maximum 100') });
    expect(rejected.body.message, 'the reason as an operator reads it, as the API and the CLI give it').not.toMatch(/m2c|EVOLTAGE/);
    expect((await eventually(() => w.got.find((m) => m.topic === 'voltage/site/cmd/invalid/result'))).body).toMatchObject({
      status: 'error',
      message: 'the message is not JSON',
    });
    expect((await eventually(() => w.got.find((m) => m.topic === 'voltage/site/cmd/c3/result'))).body).toMatchObject({
      status: 'error',
      message: 'value must be a finite number',
    });
    expect((await t.raw.keys('command:*')).length).toBe(commandsBefore);
    // A rejected id sent again is answered the same, without a second audit entry.
    const audits = await t.raw.xlen('audit:commands');
    await w.client.publishAsync('voltage/site/cmd', JSON.stringify({ id: 'c2', model: 'inv', name: 'limit', value: 50 }), { qos: 1 });
    await eventually(() => w.got.filter((m) => m.topic === 'voltage/site/cmd/c2/result').length === 2);
    expect(w.got.filter((m) => m.topic === 'voltage/site/cmd/c2/result')[1]!.body).toEqual(rejected.body);
    expect(await t.raw.xlen('audit:commands')).toBe(audits);
    expect((await t.raw.keys('command:*')).length).toBe(commandsBefore);
    // A read: a snapshot of the named models.
    await w.client.publishAsync('voltage/site/read', JSON.stringify({ id: 'r1', models: ['inv', 'nope'] }), { qos: 1 });
    const snap = await eventually(() => r.got.find((m) => m.body.id === 'r1'));
    expect(snap.body).toMatchObject({ models: { inv: { P: expect.any(Number) } }, unknown: ['nope'] });
    expect(Object.keys(snap.body.models as object)).toEqual(['inv']);
  });

  it('commands are refused unless downlink.commands is true', async () => {
    const w = await watch(broker.url, 'voltage/site/cmd/#');
    t.running = await startRuntime(loadConfig(writeSite({ 'site.yaml': SITE, 'cloud.yaml': `cloud:\n  links:\n${link('main', broker.url)}` })), {
      redisUrl: t.server.url,
      log: quietLog,
    });
    await eventually(async () => (await t.raw.hget('actor:cloud/main', 'state'))?.includes('online'));
    await w.client.publishAsync('voltage/site/cmd', JSON.stringify({ id: 'x1', model: 'inv', name: 'limit', value: 1 }), { qos: 1 });
    await sleep(500);
    expect(await t.raw.keys('command:*')).toEqual([]);
    expect(w.got.filter((m) => m.topic.endsWith('/result'))).toEqual([]);
  });

  it('a link renamed: the outbox group of the old name is removed at the next start, the new one made, a foreign group kept', async () => {
    const site = (id: string) => loadConfig(writeSite({ 'site.yaml': SITE, 'cloud.yaml': `cloud:\n  links:\n${link(id, broker.url)}` }));
    t.running = await startRuntime(site('old'), { redisUrl: t.server.url, log: quietLog });
    await t.raw.xgroup('CREATE', 'outbox', 'external', '$');
    await t.running.stop();
    t.running = undefined;
    const names = async () => (await t.bus.telemetry.outboxStats()).groups.map((g) => g.name).sort();
    expect(await names()).toEqual(['cloud:old', 'external']);
    t.running = await startRuntime(site('new'), { redisUrl: t.server.url, log: quietLog });
    expect(await names()).toEqual(['cloud:new', 'external']);
  });

  it('MQTT 5: one topic the broker refuses (ACL, PUBACK 0x87) holds back nothing: the other models keep flowing, each refused message is parked and counted exactly', async () => {
    const b = await spawnMosquitto({ denyPublish: ['voltage/site/data/inv'] });
    t.cleanups.push(() => b.stop());
    const w = await watch(b.url, 'voltage/site/data/#');
    // SITE and a second model on a second counter.
    const site = `${SITE.replace('      - { type: a,', '      - { type: m, id: 2, sim: { kind: counter, start: 1, step: 1 } }\n      - { type: a,')}  - id: meter
    measurements: { E: {} }
    mapping: { E: "v1:m:2" }
`;
    t.running = await startRuntime(
      loadConfig(writeSite({ 'site.yaml': site, 'cloud.yaml': `cloud:\n  links:\n${link('main', b.url, '      protocolVersion: 5\n')}` })),
      { redisUrl: t.server.url, log: quietLog },
    );
    const meter = () => w.got.filter((m) => m.topic === 'voltage/site/data/meter');
    // New data, not the same batch sent again and again.
    await eventually(() => new Set(meter().map((m) => m.body.seq)).size >= 40, 10_000);
    // Visible in the link's status: the count and the last refusal's reason code and topic; the link never left online.
    const ctx = await eventually(async () => {
      const c = JSON.parse((await t.raw.hget('actor:cloud/main', 'context')) ?? '{}') as { refused?: number; lastRefusal?: string; connects?: number };
      return (c.refused ?? 0) > 0 ? c : undefined;
    });
    expect(ctx.lastRefusal).toBe('0x87 not authorized: voltage/site/data/inv');
    expect(ctx.connects).toBe(1);
    expect(await t.raw.hget('actor:cloud/main', 'state')).toContain('online');
    await t.running.stop();
    t.running = undefined;
    expect(w.got.filter((m) => m.topic !== 'voltage/site/data/meter')).toEqual([]);
    const delivered = meter().map((m) => m.body.seq as number);
    // In order, once each (the gaps are the refused model's seqs).
    expect(delivered).toEqual([...new Set(delivered)].sort((x, y) => x - y));
    // Every seq given is delivered (meter) or parked (inv, with its topic and reason code), each exactly once; the
    // graceful stop left nothing pending.
    await nothingPending();
    const parked = await t.raw.xrange('cloud:main:refused', '-', '+');
    const fields = parked.map(([, f]) => Object.fromEntries(f.flatMap((v, i) => (i % 2 === 0 ? [[v, f[i + 1]!]] : []))) as Record<string, string>);
    expect(new Set(fields.map((f) => `${f.topic} ${f.reason}`))).toEqual(new Set(['voltage/site/data/inv 0x87']));
    for (const f of fields) expect(JSON.parse(f.payload!)).toMatchObject({ seq: Number(f.seq), model: 'inv' });
    expect(Number(await t.raw.hget('cloud:main:stats', 'refused'))).toBe(parked.length);
    const all = [...delivered, ...fields.map((f) => Number(f.seq))].sort((x, y) => x - y);
    const lastSeq = Number(await t.raw.get('cloud:main:seq'));
    expect(all).toEqual(Array.from({ length: lastSeq }, (_, i) => i + 1));
    expect(parked.length).toBeGreaterThanOrEqual(delivered.length - 2);
  }, 30_000);

  it('two links at once, one down: the other delivers, the down one keeps its backlog in its own group', async () => {
    const w = await watch(broker.url, 'up/#');
    const nowhere = `mqtt://127.0.0.1:${await freePort()}`;
    const cloud = `cloud:\n  links:\n${link('up', broker.url, '      prefix: "up/{site}"\n')}${link('down', nowhere, '      prefix: "down/{site}"\n      maxBacklogMB: 0.002\n')}`;
    t.running = await startRuntime(loadConfig(writeSite({ 'site.yaml': SITE, 'cloud.yaml': cloud })), { redisUrl: t.server.url, log: quietLog });
    await eventually(() => dataSeqs(w.got).length >= 20);
    expect(checkOrder(dataSeqs(w.got)).duplicates).toBe(0);
    const groups = await t.bus.telemetry.outboxStats();
    const down = groups.groups.find((g) => g.name === 'cloud:down');
    expect((down?.lag ?? 0) + (down?.pending ?? 0)).toBeGreaterThan(10);
    await eventually(async () => (await t.raw.hget('actor:cloud/down', 'state'))?.match(/disconnected|connecting/));
    // Its backlog bound (2 kB here): the oldest unsent entries are dropped and counted; the backlog stays near the bound.
    await eventually(async () => Number(await t.raw.hget('cloud:down:stats', 'dropped')) > 0, 5_000);
    const q = await t.bus.telemetry.outboxStats();
    const g = q.groups.find((x) => x.name === 'cloud:down')!;
    expect(((g.lag ?? 0) + g.pending) * (q.bytes / q.length)).toBeLessThan(0.002 * 2 ** 20 + 40 * (q.bytes / q.length));
    const status = (await statusReport(t.bus)).text;
    expect(status).toContain('cloud/down');
    expect(status).toMatch(/cloud:down \d+ pending, \d+ unread/);
    await eventually(async () => /dropped [1-9]/.test((await statusReport(t.bus)).text), 3_000);
  });
});
