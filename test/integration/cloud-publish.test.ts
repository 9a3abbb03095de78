/**
 * What a cloud link publishes, against a real mosquitto (private, free port)
 * and a private Redis: raw channel points on channelTopic; on-change with a
 * deadband (values inside the band not sent, outside sent; its state across
 * a runtime killed with kill -9 is in test/faults/runtime-kill9-cloud.test.ts); interval
 * snapshots (one per interval for the time run, each with the last value of
 * its interval, also when nothing changes).
 */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../runtime/config/load.js';
import { startRuntime } from '../../runtime/runtime.js';
import { spawnMosquitto } from '../helpers/mosquitto.js';
import { COUNTER_SITE, checkOrder, watchBroker, type Received } from '../helpers/mqttWatch.js';
import { eventually, quietLog, sleep, writeSite } from '../helpers/servers.js';
import { privateRedisSuite } from '../helpers/suite.js';

const t = privateRedisSuite();

const cloudYaml = (url: string, extra: string, id = 'main') => `cloud:
  links:
    - id: ${id}
      url: "${url}"
      reconnect: { minBackoffMs: 200, maxBackoffMs: 500 }
${extra}`;

const on = (got: readonly Received[], topic: string) => got.filter((m) => m.topic === topic);
const seqsOf = (got: readonly Received[]) => got.map((m) => m.body.seq as number);

async function broker() {
  const b = await spawnMosquitto();
  t.cleanups.push(() => b.stop());
  return b;
}

/** A broker, a watcher on it, and the runtime started on COUNTER_SITE (or `site`) with one link (`extra`: its further keys). */
async function startLink(extra: string, topic = 'voltage/site/#', site = COUNTER_SITE) {
  const b = await broker();
  const w = await watchBroker(t.cleanups, b.url, topic);
  t.running = await startRuntime(loadConfig(writeSite({ 'site.yaml': site, 'cloud.yaml': cloudYaml(b.url, extra) })), {
    redisUrl: t.server.url,
    log: quietLog,
  });
  return w;
}

describe('cloud link: what it publishes', () => {
  it('channels: raw points on channelTopic, in the link’s one sequence with the models; include.timestamps false leaves ts out', async () => {
    const w = await startLink('      channels: [v1]\n      channelTopic: "{prefix}/raw/{channel}"\n      include: { timestamps: false }\n');
    await eventually(() => on(w.got, 'voltage/site/raw/v1').length >= 10);
    const raw = on(w.got, 'voltage/site/raw/v1');
    expect(raw[0]!.body).toEqual({ seq: expect.any(Number), channel: 'v1', values: { 'm:1': expect.any(Number) } });
    const model = on(w.got, 'voltage/site/data/inv');
    // One poll: the model's message, then the channel's, with the same value.
    const p = model[0]!.body.values as { P: number };
    const sameRaw = raw.find((m) => (m.body.values as Record<string, number>)['m:1'] === p.P);
    expect(sameRaw!.body.seq).toBe((model[0]!.body.seq as number) + 1);
    const data = w.got.filter((m) => m.topic !== 'voltage/site/status');
    expect(checkOrder(seqsOf(data))).toMatchObject({ duplicates: 0 });
  });

  it('on-change with a deadband: a value within the band of the last one published is not sent, one outside it is; a point with no band is always sent', async () => {
    // The counter moves 1 a poll: with a band of 2.5 on P, every third value goes; the raw point has a band of 0 (every change).
    const w = await startLink('      channels: [v1]\n      deadband: { models: { inv: { P: 2.5 } }, channels: { v1: { "m:1": 0 } } }\n');
    await eventually(() => on(w.got, 'voltage/site/data/inv').length >= 8);
    const sent = on(w.got, 'voltage/site/data/inv').map((m) => (m.body.values as { P: number }).P);
    const raw = on(w.got, 'voltage/site/channel/v1').map((m) => (m.body.values as Record<string, number>)['m:1']!);
    for (let i = 1; i < sent.length; i++) expect(sent[i]! - sent[i - 1]!).toBe(3);
    // Every value the band held back was polled (the raw point, band 0, carries all of them).
    for (let i = 1; i < raw.length; i++) expect(raw[i]! - raw[i - 1]!).toBe(1);
    expect(raw.length).toBeGreaterThan(sent.length * 2);
    expect(checkOrder(seqsOf(w.got.filter((m) => m.topic !== 'voltage/site/status')))).toMatchObject({ duplicates: 0 });
    // The references are in Redis, written with the XACKs.
    const last = await t.raw.hgetall('cloud:main:last');
    expect(last['@publish']).toBe('on-change');
    expect(last['m/inv/P']).toMatch(/^\d+ good$/);
  });

  it('interval: one snapshot per interval for the time run, each with the last value of its interval, timed at its end; in seq order', async () => {
    const b = await broker();
    const w = await watchBroker(t.cleanups, b.url, '#');
    // A second link publishes every poll (on-change, no band) under another prefix: the reference for "the last value of the interval".
    const yaml = `${cloudYaml(b.url, '      publish: interval\n      intervalMs: 500\n      channels: [v1]\n', 'snap')}    - id: every
      url: "${b.url}"
      prefix: every/{site}
`;
    t.running = await startRuntime(loadConfig(writeSite({ 'site.yaml': COUNTER_SITE, 'cloud.yaml': yaml })), { redisUrl: t.server.url, log: quietLog });
    await eventually(() => on(w.got, 'voltage/site/data/inv').length >= 2, 10_000);
    const from = w.got.length;
    const startedAt = Date.now();
    await sleep(3_000);
    const ranMs = Date.now() - startedAt;
    await t.running.stop();
    t.running = undefined;
    const snaps = on(w.got.slice(from), 'voltage/site/data/inv');
    // 3 s at 500 ms: 6 intervals, ±1 at either edge.
    const expected = ranMs / 500;
    expect(snaps.length).toBeGreaterThanOrEqual(Math.floor(expected) - 1);
    expect(snaps.length).toBeLessThanOrEqual(Math.ceil(expected) + 1);
    const every = on(w.got, 'every/site/data/inv').map((m) => ({ ts: m.body.ts as number, P: (m.body.values as { P: number }).P }));
    for (const s of on(w.got, 'voltage/site/data/inv')) {
      const end = s.body.ts as number;
      expect(end % 500).toBe(0);
      const inInterval = every.filter((e) => e.ts < end);
      expect((s.body.values as { P: number }).P).toBe(inInterval[inInterval.length - 1]!.P);
    }
    // The channel's snapshot goes with the model's, same interval.
    const rawSnaps = on(w.got, 'voltage/site/channel/v1');
    expect(rawSnaps.map((m) => m.body.ts)).toEqual(on(w.got, 'voltage/site/data/inv').map((m) => m.body.ts));
    expect(checkOrder(seqsOf(w.got.filter((m) => m.topic.startsWith('voltage/site/') && m.topic !== 'voltage/site/status')))).toMatchObject({
      duplicates: 0,
    });
  }, 30_000);

  it('interval with nothing changing: the snapshots still come every interval (closed by the clock), recorded before they are sent', async () => {
    const b = await broker();
    const w = await watchBroker(t.cleanups, b.url, 'voltage/site/data/#');
    const site = COUNTER_SITE.replace('{ kind: counter, start: 1, step: 1 }', '{ kind: constant, value: 42 }');
    t.running = await startRuntime(
      loadConfig(writeSite({ 'site.yaml': site, 'cloud.yaml': cloudYaml(b.url, '      publish: interval\n      intervalMs: 300\n') })),
      {
        redisUrl: t.server.url,
        log: quietLog,
      },
    );
    await eventually(() => w.got.length >= 1, 10_000);
    const from = w.got.length;
    await sleep(2_000);
    const snaps = w.got.slice(from);
    expect(snaps.length).toBeGreaterThanOrEqual(5);
    expect(snaps.length).toBeLessThanOrEqual(8);
    for (const s of snaps) expect(s.body.values).toEqual({ P: 42 });
    const ends = snaps.map((s) => s.body.ts as number);
    for (let i = 1; i < ends.length; i++) expect(ends[i]! - ends[i - 1]!).toBe(300);
    expect(checkOrder(seqsOf(w.got))).toMatchObject({ duplicates: 0 });
    await t.running.stop();
    t.running = undefined;
    expect(await t.raw.hexists('cloud:main:inflight', '@snapshot')).toBe(0);
  }, 30_000);
});
