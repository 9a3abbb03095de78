/**
 * Modbus channels that never stall, over real TCP against the simulator:
 * coalesced reads decoded into Redis, one dead unit backed off on its own
 * while the others keep their rate, a hole in a device's map, exceptions,
 * a dropped link, a serial port that does not exist.
 */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../runtime/config/load.js';
import { freePort } from '../../runtime/redisServer.js';
import { startRuntime } from '../../runtime/runtime.js';
import { startSim } from '../../runtime/sim.js';
import type { ModbusChannelConfig } from '../../runtime/config/schema.js';
import { ModbusLink } from '../../actors/modbus/ModbusLink.js';
import { eventually, quietLog, sleep, writeSite } from '../helpers/servers.js';
import { privateRedisSuite } from '../helpers/suite.js';

const t = privateRedisSuite();

async function modbusSite(port: number) {
  const dir = writeSite({
    'site.yaml': `channels:
  - id: mb
    protocol: modbus-tcp
    host: 127.0.0.1
    port: ${port}
    pollMs: 100
    timeoutMs: 150
    retries: 0
    maxGap: 10
    deviceBackoff: { minBackoffMs: 1000, maxBackoffMs: 4000, randomFactor: 0, resetBackoffAfterMs: 60000 }
    reconnect: { minBackoffMs: 100, maxBackoffMs: 500, randomFactor: 0, resetBackoffAfterMs: 1000 }
    points:
      - { type: m, id: 1, modbus: { unit: 1, fn: 3, address: 0, dataType: float32 }, sim: { kind: counter, start: 0, step: 1 } }
      - { type: m, id: 2, modbus: { unit: 1, fn: 3, address: 2, dataType: float32, byteOrder: CDAB }, sim: { kind: constant, value: 12.5 } }
      - { type: m, id: 3, scale: 0.1, modbus: { unit: 1, fn: 4, address: 10, dataType: int16 }, sim: { kind: constant, value: -20.5 } }
      - { type: s, id: 1, modbus: { unit: 1, fn: 2, address: 3 }, sim: { kind: constant, value: 1 } }
      - { type: m, id: 10, modbus: { unit: 2, fn: 3, address: 100 }, sim: { kind: counter, start: 0, step: 1, max: 60000 } }
      - { type: m, id: 11, modbus: { unit: 2, fn: 3, address: 104, dataType: uint32, byteOrder: DCBA }, sim: { kind: constant, value: 70000 } }
      - { type: m, id: 20, modbus: { unit: 3, fn: 3, address: 0 }, sim: { kind: constant, value: 7 } }
models:
  - id: dev1
    measurements: { P: {}, E: {} }
    mapping: { P: "mb:m:1", E: "mb:m:2" }
`,
  });
  return loadConfig(dir);
}

async function start(port = 0) {
  const p = port || (await freePort());
  const site = await modbusSite(p);
  t.sim = await startSim(site, { updateMs: 20 });
  t.running = await startRuntime(site, { redisUrl: t.server.url, log: quietLog });
  return site;
}

/** Distinct timestamps of a point seen during `ms`: how often it was really polled. */
async function pollRate(field: string, ms: number): Promise<number> {
  const seen = new Set<string>();
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const ts = await t.raw.hget('comsrv:mb:m:ts', field);
    if (ts) seen.add(ts);
    await sleep(10);
  }
  return seen.size / (ms / 1000);
}

describe('Modbus TCP channel', () => {
  it('polls every device through the coalesced plan and decodes types, byte orders and scale', async () => {
    await start();
    const v = await eventually(async () => {
      const m = await t.raw.hgetall('comsrv:mb:m');
      return m['1'] && Number(m['10']) > 0 && m['20'] ? m : undefined;
    });
    expect(Number(v['2'])).toBe(12.5);
    expect(Number(v['3'])).toBeCloseTo(-20.5, 5);
    expect(Number(v['11'])).toBe(70000);
    expect(await t.raw.hget('comsrv:mb:s', '1')).toBe('1.000000');
    expect(await t.raw.hget('modsrv:dev1:measurement', 'E')).toBe('12.500000');
    const q = await t.raw.hgetall('comsrv:mb:m:q');
    expect(new Set(Object.values(q))).toEqual(new Set(['good']));
    // Coalesced: unit 1 is read with one request per function (3: 0..3, 4: 10, 2: 3), not one per point.
    const unit1 = t.sim!.channels[0]!.devices.get(1)!;
    const before = unit1.requests;
    await sleep(500);
    const perPoll = (unit1.requests - before) / 5;
    expect(perPoll).toBeGreaterThan(2);
    expect(perPoll).toBeLessThan(4);
  });

  it('one dead unit: its points go comm-failure with a timestamp, the others keep their poll rate', async () => {
    await start();
    await eventually(async () => Number(await t.raw.hget('comsrv:mb:m', '10')) > 0);
    const healthy = await pollRate('10', 1000);
    t.sim!.setFault('mb', 3, { kind: 'no-answer' });
    await eventually(async () => (await t.raw.hget('comsrv:mb:m:q', '20')) === 'comm-failure', 3_000);
    const markedAt = Number(await t.raw.hget('comsrv:mb:m:ts', '20'));
    expect(markedAt).toBeGreaterThan(Date.now() - 3_000);
    // Backoff grows (1 s, 2 s, 4 s): after the first probes, a probe costs one timeout every few seconds.
    await sleep(1_500);
    const during = await pollRate('10', 3000);
    expect(during).toBeGreaterThanOrEqual(0.85 * healthy);
    expect(await t.raw.hget('comsrv:mb:m:q', '1')).toBe('good');
    // It comes back by itself, no restart: the supervisor saw nothing.
    t.sim!.setFault('mb', 3, { kind: 'none' });
    await eventually(async () => (await t.raw.hget('comsrv:mb:m:q', '20')) === 'good', 8_000);
    expect(await t.raw.hget('actor:channel/mb', 'restarts')).toBe('0');
  });

  it('keeps no settled request of modbus-serial, which would hold 256 per connection', async () => {
    const site = await modbusSite(await freePort());
    t.sim = await startSim(site, { updateMs: 20 });
    const channel = site.channels[0] as ModbusChannelConfig;
    const link = new ModbusLink(channel, quietLog);
    await link.connect();
    try {
      for (let i = 0; i < 100; i++) await link.read(channel.points, Date.now()); // 3 units: 400 requests
      const client = (link as unknown as { client: { _transactions: Record<number, unknown> } }).client;
      expect(Object.keys(client._transactions)).toEqual([]);
    } finally {
      await link.close();
    }
  });

  it('a hole in the device map: the coalesced read is split and every good point keeps coming', async () => {
    await start();
    const unit2 = t.sim!.channels[0]!.devices.get(2)!;
    unit2.holes.push({ fn: 3, from: 101, to: 104 });
    const a = await eventually(async () => Number(await t.raw.hget('comsrv:mb:m', '10')) || undefined);
    await eventually(async () => Number(await t.raw.hget('comsrv:mb:m', '10')) > a + 3);
    expect(await t.raw.hget('comsrv:mb:m:q', '10')).toBe('good');
    expect(await t.raw.hget('comsrv:mb:m:q', '11')).toBe('good');
    expect(await t.raw.hget('comsrv:mb:m', '11')).toBe('70000.000000');
  });

  it('a device exception marks its points bad; a dropped link is reconnected by the channel', async () => {
    await start();
    await eventually(async () => (await t.raw.hget('comsrv:mb:m:q', '10')) === 'good');
    t.sim!.setFault('mb', 2, { kind: 'exception', code: 4 });
    await eventually(async () => (await t.raw.hget('comsrv:mb:m:q', '10')) === 'bad');
    expect(await t.raw.hget('comsrv:mb:m:q', '1')).toBe('good');
    t.sim!.setFault('mb', 2, { kind: 'drop' });
    await eventually(async () => Number(await t.raw.hget('actor:channel/mb', 'context').then((c) => JSON.parse(c ?? '{}').linkErrors)) > 0, 5_000);
    t.sim!.setFault('mb', 2, { kind: 'none' });
    await eventually(async () => (await t.raw.hget('comsrv:mb:m:q', '10')) === 'good', 5_000);
    expect(await t.raw.hget('actor:channel/mb', 'restarts')).toBe('0');
  });

  it('a serial port that does not exist: the channel says so and keeps retrying, nothing crashes', async () => {
    const site = loadConfig(
      writeSite({
        'site.yaml': `channels:
  - id: rtu
    protocol: modbus-rtu
    serial: { path: /dev/voltage-no-such-port }
    reconnect: { minBackoffMs: 50, maxBackoffMs: 200, randomFactor: 0, resetBackoffAfterMs: 1000 }
    points:
      - { type: m, id: 1, modbus: { unit: 1, fn: 3, address: 0 } }
`,
      }),
    );
    t.running = await startRuntime(site, { redisUrl: t.server.url, log: quietLog });
    const ctx = await eventually(async () => {
      const c = JSON.parse((await t.raw.hget('actor:channel/rtu', 'context')) ?? '{}') as { linkErrors?: number; lastError?: string };
      return (c.linkErrors ?? 0) >= 2 ? c : undefined;
    });
    expect(ctx.lastError).toContain('cannot open serial port /dev/voltage-no-such-port');
    expect(await t.raw.hget('actor:channel/rtu', 'status')).toBe('running');
  });
});
