/**
 * What history keeps, command results as events, and the tiers, against a real
 * private VictoriaMetrics and redis-server: interval and off and the heartbeat
 * through the writer; a command's end through cmd_result and the outbox; the
 * 1 m and 1 h tiers computed over a known waveform, equal to the raw
 * aggregates, and a coarse query answered from the coarsest tier (still
 * answered with the raw values deleted); tier checks still run while the
 * writer is behind (draining a backlog), at most once per tierCheckBehindMs.
 */
import { rmSync } from 'node:fs';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createActor } from 'xstate';
import { provideHistoryMachine } from '../../actors/history/HistoryActor.js';
import { HistoryWriter, type HistoryWriterOptions } from '../../actors/history/HistoryWriter.js';
import { HistoryQueries } from '../../actors/history/query.js';
import type { VoltageRedis } from '../../runtime/redis/voltageRedis.js';
import { eventually, quietLog, spawnRedis, wrapper, type RedisServer } from '../helpers/servers.js';
import { forceFlush, spawnVictoria, type VictoriaServer } from '../helpers/victoria.js';
import { KEYS } from '../../runtime/redis/keys.js';

let redis: RedisServer;
let vm: VictoriaServer;
let bus: VoltageRedis;
let raw: Redis;
let queries: HistoryQueries;
const stops: Array<() => Promise<void>> = [];

beforeAll(async () => {
  [redis, vm] = await Promise.all([spawnRedis(), spawnVictoria({ retentionPeriod: '100y' })]);
  bus = wrapper(redis, { outboxMaxMB: 64 });
  raw = new Redis(redis.url, { maxRetriesPerRequest: null });
  await bus.site.load({ site: 't', json: '{"site":"t"}', mapping: new Map(), controls: new Map([['bess1:Pset', '4001:a:1|0|100']]), models: ['bess1'] });
  queries = new HistoryQueries({ url: vm.url, maxPoints: 10_000 });
});
afterEach(async () => {
  for (const stop of stops.splice(0)) await stop();
});
afterAll(async () => {
  raw.disconnect();
  await bus.close();
  await Promise.all([vm.stop(), redis.stop()]);
  rmSync(vm.dataDir, { recursive: true, force: true });
});

async function startWriter(backend: string, extra: Partial<HistoryWriterOptions> = {}): Promise<{ state: () => unknown }> {
  const conn = new Redis(redis.url, { maxRetriesPerRequest: null });
  const writer = new HistoryWriter(
    bus.onConnection(conn),
    { backend, url: vm.url, batchMaxMs: 50, batchMaxEntries: 500, windowMs: 10_000, drainEntriesPerSecond: 100_000, timeoutMs: 5_000, ...extra },
    quietLog,
  );
  const actor = createActor(provideHistoryMachine(writer, { minBackoffMs: 100, maxBackoffMs: 400, randomFactor: 0, resetBackoffAfterMs: 0 }, quietLog), {
    input: { backend },
  });
  actor.subscribe({ error: () => undefined });
  actor.start();
  stops.push(async () => {
    actor.stop();
    conn.disconnect();
  });
  await eventually(async () => (await raw.exists(KEYS.outbox)) === 1, 5_000, 20);
  return { state: () => actor.getSnapshot().value };
}

/** Until the group has read and acknowledged everything, then what VictoriaMetrics took is queryable. */
async function caughtUp(backend: string): Promise<void> {
  await eventually(
    async () => {
      const last = (await raw.xrevrange(KEYS.outbox, '+', '-', 'COUNT', 1))[0]?.[0];
      const groups = (await raw.call('XINFO', 'GROUPS', KEYS.outbox)) as unknown[][];
      const g = groups
        .map((x) => Object.fromEntries(Array.from({ length: x.length / 2 }, (_, i) => [x[2 * i], x[2 * i + 1]])))
        .find((x) => x.name === `history:${backend}`);
      return g !== undefined && g.pending === 0 && g['last-delivered-id'] === last;
    },
    20_000,
    50,
  );
  await forceFlush(vm.url);
}

/** [ts, value] of every raw sample of a metric selector in [from, to]. */
async function samples(selector: string, from: number, to: number): Promise<Array<[number, number]>> {
  const qs = new URLSearchParams({ 'match[]': selector, start: String(from / 1_000), end: String(to / 1_000) });
  const text = await (await fetch(`${vm.url}/api/v1/export?${qs}`)).text();
  const out: Array<[number, number]> = [];
  for (const line of text.split('\n').filter(Boolean)) {
    const j = JSON.parse(line) as { values: number[]; timestamps: number[] };
    for (const [i, t] of j.timestamps.entries()) out.push([t, j.values[i]!]);
  }
  return out.sort((a, b) => a[0] - b[0]);
}

const iso = (ms: number) => new Date(ms).toISOString();

describe('history: what is kept, command results, tiers', () => {
  it('interval keeps the last value of each interval at its end; off keeps nothing; a heartbeat fills a flat signal', async () => {
    const keep = new Map([
      ['channel/5001/m/1', { mode: 'interval', intervalMs: 1_000 } as const],
      ['channel/5001/m/2', { mode: 'off' } as const],
      ['channel/5001/m/3', { mode: 'on-change', maxGapMs: 1_000 } as const],
    ]);
    await startWriter('keep', { keep, keepGraceMs: 200 });
    const base = Math.floor(Date.now() / 1_000) * 1_000 - 20_000;
    // 1: a value every 250 ms for 5 s; 2: the same; 3: one value, then nothing (a flat signal under its deadband).
    for (let i = 1; i <= 20; i++)
      await bus.telemetry.c2m('5001', base + i * 250, [
        { type: 'm', id: 1, value: i, quality: null },
        { type: 'm', id: 2, value: i, quality: null },
        ...(i === 1 ? [{ type: 'm' as const, id: 3, value: 42, quality: null }] : []),
      ]);
    await caughtUp('keep');
    const end = base + 20_000;
    await eventually(async () => (await samples('voltage_point_value{channel="5001",point="3"}', base, end)).length >= 19, 5_000, 100);
    expect(await samples('voltage_point_value{channel="5001",point="1"}', base, end)).toEqual([
      [base + 1_000, 4],
      [base + 2_000, 8],
      [base + 3_000, 12],
      [base + 4_000, 16],
      [base + 5_000, 20],
    ]);
    expect(await samples('voltage_point_value{channel="5001",point="2"}', base, end)).toEqual([]);
    const flat = await samples('voltage_point_value{channel="5001",point="3"}', base, end);
    expect(flat[0]).toEqual([base + 250, 42]);
    for (let i = 1; i < flat.length; i++) expect(flat[i]).toEqual([base + 250 + i * 1_000, 42]);
    // The state is kept beside the acknowledgement, for a restart.
    expect(Object.keys(await raw.hgetall(KEYS.historyKeep('keep'))).sort()).toEqual(['channel/5001/m/1', 'channel/5001/m/3']);
  });

  it('a command result is kept as an event: command/<model>/<control>, the value commanded, its status', async () => {
    await startWriter('cmd');
    await bus.commands.ensureCommandGroup('4001', 'ch');
    const id = await bus.commands.m2c('bess1', 'Pset', 55, 'op', 5_000);
    const [entry] = await bus.commands.readCommands('4001', 'ch', 'c', false);
    await bus.commands.commandResult('4001', id, 'confirmed', '', 'ch', entry!.entryId, 54.5);
    await bus.commands.commandResult('4001', id, 'confirmed', '', 'ch', entry!.entryId, 54.5); // a retry: in the outbox once
    await caughtUp('cmd');
    const now = Date.now();
    expect((await samples('voltage_command_value{model="bess1",name="Pset"}', now - 60_000, now)).map(([, v]) => v)).toEqual([55]);
    expect((await samples('voltage_command_status{model="bess1",name="Pset"}', now - 60_000, now)).map(([, v]) => v)).toEqual([0]);
    expect((await samples('voltage_command_readback{model="bess1",name="Pset"}', now - 60_000, now)).map(([, v]) => v)).toEqual([54.5]);
    expect(await queries.list()).toContain('command/bess1/Pset');
  });

  it('tiers: 1 m and 1 h buckets over known waveforms equal the raw aggregates; a coarse step is answered from the coarsest tier', async () => {
    // Two hours of two waveforms, ending at an hour boundary over an hour ago: a ramp and a square wave, one sample every 10 s.
    const h0 = Math.floor(Date.now() / 3_600_000) * 3_600_000 - 3_600_000;
    const from = h0 - 2 * 3_600_000;
    const ramp = (t: number) => ((t - from) / 10_000) % 97;
    const square = (t: number) => (Math.floor((t - from) / 450_000) % 2 === 0 ? -5 : 5);
    // The marks as a writer that has done everything before `from` would have kept them.
    await raw.hset(KEYS.historyTiers('tier'), { '1m': from, '1h': from });
    // The backlog is in the outbox before the writer starts (it drains it in order, as after an outage).
    await bus.core.ensureGroup(KEYS.outbox, KEYS.historyGroup('tier'));
    const ts: number[] = [];
    for (let t = from + 10_000; t <= h0; t += 10_000) ts.push(t);
    for (const t of ts)
      await bus.telemetry.c2m('6001', t, [
        { type: 'm', id: 1, value: ramp(t), quality: null },
        { type: 'm', id: 2, value: square(t), quality: null },
      ]);
    await startWriter('tier', { tiers: true, tierDelayMs: 1_000, tierBucketsPerCheck: 200 });
    await caughtUp('tier');
    await eventually(async () => Number(await raw.hget(KEYS.historyTiers('tier'), '1h')) >= h0, 20_000, 200);
    await forceFlush(vm.url);
    const expected = (f: (t: number) => number, size: number) =>
      Array.from({ length: (h0 - from) / size }, (_, k) => {
        const vs = ts.filter((t) => t > from + k * size && t <= from + (k + 1) * size).map(f);
        return {
          end: from + (k + 1) * size,
          min: Math.min(...vs),
          max: Math.max(...vs),
          mean: vs.reduce((s, v) => s + v, 0) / vs.length,
          last: vs[vs.length - 1]!,
          count: vs.length,
        };
      });
    for (const [point, f] of [
      [1, ramp],
      [2, square],
    ] as const) {
      for (const [tier, size] of [
        ['1m', 60_000],
        ['1h', 3_600_000],
      ] as const) {
        const want = expected(f, size);
        for (const field of ['min', 'max', 'mean', 'last', 'count'] as const) {
          const got = await samples(`voltage_point_${tier}_${field}{channel="6001",point="${point}"}`, from, h0);
          expect(
            got.map(([t]) => t),
            `${tier} ${field}`,
          ).toEqual(want.map((w) => w.end));
          for (const [k, [, v]] of got.entries()) expect(v, `${tier} ${field} bucket ${k}`).toBeCloseTo(want[k]![field], 9);
        }
      }
    }
    // Queries: 1 h steps from the 1 h tier, 15 min steps from the 1 m tier, 10 s steps raw; the same numbers as the raw values give.
    const series = 'channel/6001/m/1,channel/6001/m/2';
    const range = { series, from: iso(from), to: iso(h0) };
    const byRaw = new HistoryQueries({ url: vm.url, maxPoints: 10_000, tiers: false });
    for (const [step, tier] of [
      ['1h', '1h'],
      ['15m', '1m'],
      ['10s', 'raw'],
    ] as const)
      for (const agg of ['mean', 'min', 'max', 'last', 'count'] as const) {
        const a = await queries.query({ ...range, step, agg });
        expect(a.tier).toBe(tier);
        const r = await byRaw.query({ ...range, step, agg });
        for (const [i, s] of a.series.entries()) for (const [k, v] of s.values.entries()) expect(v, `${step} ${agg}`).toBeCloseTo(r.series[i]!.values[k]!, 9);
      }
    // With the raw values deleted, the hour steps are still answered: from the tier.
    await fetch(`${vm.url}/api/v1/admin/tsdb/delete_series?match[]=${encodeURIComponent('voltage_point_value{channel="6001"}')}`);
    const noRaw = await queries.query({ ...range, series: 'channel/6001/m/2', step: '1h', agg: 'max' });
    expect(noRaw.series[0]!.values).toEqual([null, 5, 5]);
  }, 60_000);

  it('behind (a backlog drained, as after VictoriaMetrics came back): tier checks still run, at most once per tierCheckBehindMs', async () => {
    // Ten minutes of polls, one a second, from half an hour ago; the marks at their start, so every 1 m bucket of them is due.
    const from = Math.floor(Date.now() / 60_000) * 60_000 - 30 * 60_000;
    await raw.hset(KEYS.historyTiers('behind'), { '1m': from, '1h': from });
    await bus.core.ensureGroup(KEYS.outbox, KEYS.historyGroup('behind'));
    for (let t = from + 1_000; t <= from + 600_000; t += 1_000) await bus.telemetry.c2m('6002', t, [{ type: 'm', id: 1, value: t % 7, quality: null }]);
    // Each check: when it started, whether the writer was draining then, and the 1 m mark once it was done.
    const checks: Array<{ at: number; draining: boolean; mark: number }> = [];
    let state: () => unknown = () => undefined;
    const proto = HistoryWriter.prototype as unknown as { writeTiers(now: number): Promise<void> };
    const writeTiers = proto.writeTiers;
    const spy = vi.spyOn(proto, 'writeTiers').mockImplementation(async function (this: HistoryWriter, now: number) {
      const draining = state() === 'draining';
      await writeTiers.call(this, now);
      checks.push({ at: now, draining, mark: Number(await raw.hget(KEYS.historyTiers('behind'), '1m')) });
    });
    try {
      // 600 entries in full batches of 50 at 80 a second: ~7.5 s behind.
      ({ state } = await startWriter('behind', {
        tiers: true,
        tierDelayMs: 1_000,
        tierBucketsPerCheck: 2,
        tierCheckBehindMs: 1_500,
        batchMaxEntries: 50,
        drainEntriesPerSecond: 80,
      }));
      await caughtUp('behind');
    } finally {
      spy.mockRestore();
    }
    const behind = checks.filter((c) => c.draining);
    expect(behind.length, JSON.stringify(checks)).toBeGreaterThanOrEqual(3);
    for (let i = 1; i < behind.length; i++) expect(behind[i]!.at - behind[i - 1]!.at).toBeGreaterThanOrEqual(1_500);
    // Not only run: they computed buckets while the backlog was still being drained.
    expect(behind.at(-1)!.mark).toBeGreaterThan(from);
  }, 30_000);
});
