/**
 * A protocol registered by a test: a fake meter whose device factory serves a
 * few registers. A site uses it from YAML; the channel polls it end to end into
 * a private redis-server; its per-point qualities and its DeviceError codes
 * are handled exactly as the channel handles Modbus's. Nothing of the channel
 * actor is touched or stubbed: the protocol table is the only way in.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { DeviceError, type Device, type DeviceErrorCode, type RawReading } from '../../actors/channel/device.js';
import { registerProtocol, unregisterProtocol } from '../../actors/channel/protocols.js';
import { loadConfig } from '../../runtime/config/load.js';
import { pointFields, protocolChannelSchema, type PointConfig } from '../../runtime/config/schema.js';
import { startRuntime } from '../../runtime/runtime.js';
import { configIssues } from '../helpers/configIssues.js';
import { eventually, quietLog, writeSite } from '../helpers/servers.js';
import { commandResult, privateRedisSuite } from '../helpers/suite.js';

const t = privateRedisSuite();

/** The fake meter's channel: its points name a register, the channel a meter serial number. */
const fakePointSchema = z.strictObject({ ...pointFields, register: z.number().int().nonnegative() });
const fakeChannelSchema = protocolChannelSchema('fake-meter', fakePointSchema, { serialNo: z.string() });
type FakeChannel = z.output<typeof fakeChannelSchema>;

/** What the test controls of each fake meter, by channel id; it outlives the devices (a restart makes a new one). */
interface Meter {
  readonly registers: Map<number, number>;
  /** Registers that answer with this quality instead of a value. */
  readonly quality: Map<number, 'bad' | 'comm-failure'>;
  /** The next `count` reads reject with `code`. */
  failReads: { code: DeviceErrorCode; count: number } | undefined;
  /** Writes reject with this code. */
  failWrites: DeviceErrorCode | undefined;
  devicesMade: number;
  connects: number;
}
const meters = new Map<string, Meter>();

function meter(id: string): Meter {
  const known = meters.get(id);
  if (known) return known;
  const m: Meter = { registers: new Map(), quality: new Map(), failReads: undefined, failWrites: undefined, devicesMade: 0, connects: 0 };
  meters.set(id, m);
  return m;
}

class FakeMeterDevice implements Device {
  private readonly at: Map<PointConfig, FakeChannel['points'][number]>;
  constructor(
    private readonly channel: FakeChannel,
    private readonly m: Meter,
  ) {
    this.at = new Map(channel.points.map((p) => [p, p]));
    m.devicesMade += 1;
  }
  async connect(): Promise<void> {
    this.m.connects += 1;
  }
  async close(): Promise<void> {}
  private reading(point: PointConfig): RawReading {
    const p = this.at.get(point);
    if (!p) return { quality: 'bad' };
    const q = this.m.quality.get(p.register);
    return q ? { quality: q } : (this.m.registers.get(p.register) ?? Number.NaN);
  }
  async read(points: readonly PointConfig[]): Promise<RawReading[]> {
    const fail = this.m.failReads;
    if (fail && fail.count > 0) {
      fail.count -= 1;
      throw new DeviceError(fail.code, `fake meter ${this.channel.serialNo}: ${fail.code}`, { channel: this.channel.id });
    }
    return points.map((p) => this.reading(p));
  }
  async write(point: PointConfig, value: number): Promise<void> {
    const p = this.at.get(point);
    if (!p) throw new DeviceError('NOT_WRITABLE', `no point ${point.type}:${point.id}`);
    if (this.m.failWrites) throw new DeviceError(this.m.failWrites, `fake meter refused: ${this.m.failWrites}`);
    this.m.registers.set(p.register, value);
  }
  async readBack(point: PointConfig): Promise<RawReading> {
    return this.reading(point);
  }
}

beforeAll(() => {
  registerProtocol('fake-meter', {
    schema: fakeChannelSchema,
    device: (channel) => new FakeMeterDevice(channel, meter(channel.id)),
    check: (channel) =>
      channel.points.flatMap((p, pi) =>
        p.register > 9999
          ? [{ at: ['points', pi, 'register'], code: 'OUT_OF_RANGE', message: `point ${p.type}:${p.id}: the fake meter has registers 0..9999` }]
          : [],
      ),
  });
});
afterAll(() => {
  unregisterProtocol('fake-meter');
});

const SITE = `channels:
  - id: fk
    protocol: fake-meter
    serialNo: FM-1
    pollMs: 50
    reconnect: { minBackoffMs: 100, maxBackoffMs: 200, randomFactor: 0, resetBackoffAfterMs: 1000 }
    points:
      - { type: m, id: 1, register: 10, scale: 0.5 }
      - { type: m, id: 2, register: 11 }
      - { type: m, id: 3, register: 12 }
      - { type: a, id: 1, register: 20, min: 0, max: 100 }
models:
  - id: meter
    measurements: { P: {}, Q: {} }
    controls: { limit: {} }
    mapping: { P: "fk:m:1", Q: "fk:m:2", limit: "fk:a:1" }
`;

async function start(): Promise<Meter> {
  meters.clear();
  const m = meter('fk');
  m.registers.set(10, 84).set(11, 7).set(20, 0);
  m.quality.set(12, 'comm-failure');
  t.running = await startRuntime(loadConfig(writeSite({ 'site.yaml': SITE })), { redisUrl: t.server.url, log: quietLog });
  return m;
}

const context = async () => JSON.parse((await t.raw.hget('actor:channel/fk', 'context')) ?? '{}') as { linkErrors?: number; polls?: number };

describe('a protocol registered by a test', () => {
  it('polls end to end: values (scaled) and qualities reach the channel and the model; a write is confirmed', async () => {
    const m = await start();
    const values = await eventually(async () => {
      const v = await t.raw.hgetall('comsrv:fk:m');
      return v['1'] !== undefined && v['2'] !== undefined ? v : undefined;
    });
    expect(Number(values['1'])).toBe(42);
    expect(Number(values['2'])).toBe(7);
    expect(await t.raw.hgetall('comsrv:fk:m:q')).toMatchObject({ 1: 'good', 2: 'good', 3: 'comm-failure' });
    await eventually(async () => (await t.raw.hget('modsrv:meter:measurement', 'P')) !== null);
    expect(Number(await t.raw.hget('modsrv:meter:measurement', 'P'))).toBe(42);
    // A point's quality changes with what the device answers.
    m.quality.set(11, 'bad');
    await eventually(async () => (await t.raw.hget('comsrv:fk:m:q', '2')) === 'bad');
    m.quality.delete(11);
    await eventually(async () => (await t.raw.hget('comsrv:fk:m:q', '2')) === 'good');
    const done = await commandResult(t.bus, await t.bus.commands.m2c('meter', 'limit', 33, 'test', 5_000));
    expect(done).toMatchObject({ status: 'confirmed', readback: 33 });
    expect(m.registers.get(20)).toBe(33);
  });

  it('LINK_DOWN: the channel reconnects with backoff and keeps its actor, as for a Modbus link', async () => {
    const m = await start();
    await eventually(async () => (await t.raw.hget('comsrv:fk:m', '1')) !== null);
    const connectsBefore = m.connects;
    m.failReads = { code: 'LINK_DOWN', count: 2 };
    await eventually(async () => ((await context()).linkErrors ?? 0) >= 2, 5_000);
    m.registers.set(10, 100);
    await eventually(async () => Number(await t.raw.hget('comsrv:fk:m', '1')) === 50, 5_000);
    expect(m.connects).toBeGreaterThanOrEqual(connectsBefore + 2);
    expect(m.devicesMade).toBe(1); // the same device reconnected: no restart
    expect(await t.raw.hget('actor:channel/fk', 'restarts')).toBe('0');
  });

  it('DEVICE_CRASH (or any code but LINK_DOWN from a poll) fails the actor and its supervisor restarts it with a new device', async () => {
    const m = await start();
    await eventually(async () => (await t.raw.hget('comsrv:fk:m', '1')) !== null);
    m.failReads = { code: 'DEVICE_CRASH', count: 1 };
    await eventually(async () => Number((await t.raw.hget('actor:channel/fk', 'restarts')) ?? 0) >= 1, 5_000);
    expect(await t.raw.hget('actor:channel/fk', 'lastError')).toContain('DEVICE_CRASH');
    m.registers.set(10, 10);
    await eventually(async () => Number(await t.raw.hget('comsrv:fk:m', '1')) === 5, 5_000);
    expect(m.devicesMade).toBe(2);
  });

  it('a write rejected with TIMEOUT ends the command as timeout, with REFUSED as failed', async () => {
    const m = await start();
    await eventually(async () => (await t.raw.hget('comsrv:fk:m', '1')) !== null);
    m.failWrites = 'TIMEOUT';
    expect(await commandResult(t.bus, await t.bus.commands.m2c('meter', 'limit', 1, 'test', 5_000))).toMatchObject({ status: 'timeout' });
    m.failWrites = 'REFUSED';
    const refused = await commandResult(t.bus, await t.bus.commands.m2c('meter', 'limit', 2, 'test', 5_000));
    expect(refused.status).toBe('failed');
    expect(refused.message).toContain('fake meter refused: REFUSED');
    expect(m.registers.get(20)).toBe(0);
  });

  it('its channels are validated by its schema and by its check, each problem with file:line:column', () => {
    const issues = (yaml: string) => configIssues({ 'site.yaml': yaml });
    const [unknown] = issues(SITE.replace('serialNo: FM-1', 'serialNo: FM-1\n    baud: 9600'));
    expect(unknown).toMatchObject({ file: 'site.yaml', line: 5, column: 5, code: 'UNKNOWN_KEY' });
    expect(unknown?.message).toContain('serialNo'); // the keys allowed are the fake meter's
    const [range] = issues(SITE.replace('register: 12 }', 'register: 12345 }'));
    expect(range).toMatchObject({ file: 'site.yaml', line: 10, code: 'OUT_OF_RANGE', message: 'point m:3: the fake meter has registers 0..9999' });
    expect(range?.column).toBeGreaterThan(30);
  });
});
