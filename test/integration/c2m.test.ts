/**
 * The Functions library against a private redis-server: c2m is atomic,
 * rejects bad arguments without writing anything, bounds its outboxes and
 * counts what it drops; the library and mapping come back after FUNCTION FLUSH
 * and after Redis lost everything.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { parseChannelUpdate } from '../../runtime/domain/c2mBatch.js';
import { KEYS } from '../../runtime/redis/keys.js';
import type { VoltageRedis } from '../../runtime/redis/voltageRedis.js';
import { RedisFunctionError } from '../../runtime/errors.js';
import { rawClient, spawnRedis, wrapper, type RedisServer } from '../helpers/servers.js';

let server: RedisServer;
let raw: Redis;
let bus: VoltageRedis;
const site = {
  site: 't', json: '{"site":"t"}',
  mapping: new Map([['1001:m:1', 'pv1:P'], ['1001:m:2', 'pv1:Q'], ['1002:s:5', 'bess:on']]),
  controls: new Map([['pv1:limit', '1001:a:1|0|100']]),
};

beforeAll(async () => {
  server = await spawnRedis();
  raw = rawClient(server);
  bus = wrapper(server, { historyMaxLen: 5, cloudMaxLen: 3 });
});
afterAll(async () => {
  raw.disconnect();
  await bus.close();
  await server.stop();
});
beforeEach(async () => {
  await raw.flushall();
  await bus.site.load(site);
});

async function dump(): Promise<Record<string, string>> {
  const keys = (await raw.keys('*')).sort();
  const out: Record<string, string> = {};
  for (const k of keys) out[k] = JSON.stringify(await raw.call('DUMP', k));
  return out;
}

describe('c2m', () => {
  it('writes the channel hashes, maps to models, notifies each touched model once, and appends to both outboxes', async () => {
    const sub = raw.duplicate();
    const got: Array<[string, string]> = [];
    sub.on('message', (ch: string, msg: string) => got.push([ch, msg]));
    await sub.subscribe('modsrv:pv1:update', 'modsrv:bess:update', 'comsrv:1001:update');
    const r = await bus.telemetry.c2m('1001', 1_700_000_000_000, [
      { type: 'm', id: 1, value: 12.5, quality: 'good' },
      { type: 'm', id: 2, value: null, quality: 'bad' },
      { type: 'm', id: 3, value: 7, quality: 'good' },
    ]);
    expect(r).toEqual({ points: 3, models: 1, historyDropped: 0, cloudDropped: 0 });
    expect(await raw.hgetall('comsrv:1001:m')).toEqual({ 1: '12.500000', 3: '7.000000' });
    expect(await raw.hgetall('comsrv:1001:m:ts')).toEqual({ 1: '1700000000000', 2: '1700000000000', 3: '1700000000000' });
    expect(await raw.hgetall('comsrv:1001:m:q')).toEqual({ 1: 'good', 2: 'bad', 3: 'good' });
    expect(await raw.hgetall('modsrv:pv1:measurement')).toEqual({ P: '12.500000' });
    expect(await raw.hgetall('modsrv:pv1:measurement:q')).toEqual({ P: 'good', Q: 'bad' });
    for (let i = 0; i < 50 && got.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
    sub.disconnect();
    expect(got).toHaveLength(2);
    expect(got[0]![0]).toBe('modsrv:pv1:update');
    expect(JSON.parse(got[0]![1])).toEqual({ ts: 1_700_000_000_000, src: 'c2m', v: { P: 12.5 }, q: { Q: 'bad' } });
    const [entry] = await raw.xrange(KEYS.history, '-', '+');
    // The channel's notification carries what was written: the time, then the points as in the outbox.
    expect(got[1]).toEqual(['comsrv:1001:update', `1700000000000\n${entry![1][7]}`]);
    expect(parseChannelUpdate(got[1]![1]).points).toEqual([
      { type: 'm', id: 1, value: 12.5, quality: 'good' },
      { type: 'm', id: 2, value: null, quality: 'bad' },
      { type: 'm', id: 3, value: 7, quality: 'good' },
    ]);
    expect(entry![1].slice(0, 7)).toEqual(['src', 'c', 'id', '1001', 'ts', '1700000000000', 'p']);
    // The points as c2m got them: a value is good unless a quality stands beside it; no value, a quality mark.
    expect(entry![1][7]).toBe('m 1 12.500000 good\nm 2  bad\nm 3 7.000000 good\n');
    expect(await raw.xlen(KEYS.cloud)).toBe(1);
  });

  it.each([
    ['a value that is not a number', [{ type: 'm', id: 1, value: Number.NaN, quality: 'good' }], 'is not a number'],
    ['an unknown quality', [{ type: 'm', id: 1, value: 1, quality: 'great' }], 'quality of m:1 must be'],
    ['an unknown point type', [{ type: 'x', id: 1, value: 1, quality: 'good' }], 'is not "type id value quality" with type m, s, c or a'],
    ['a point id that is not a number', [{ type: 'm', id: Number.NaN, value: 1, quality: 'good' }], 'a numeric id: m NaN'],
  ])('rejects %s and writes nothing, even when good points come first', async (_, bad, message) => {
    await bus.telemetry.c2m('1001', 1_700_000_000_000, [{ type: 'm', id: 1, value: 1, quality: 'good' }]);
    const before = await dump();
    const batch = [{ type: 'm', id: 2, value: 2, quality: 'good' }, ...bad] as Parameters<VoltageRedis['telemetry']['c2m']>[2];
    const err = await bus.telemetry.c2m('1001', 1_700_000_000_001, batch).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RedisFunctionError);
    expect((err as Error).message).toContain(message);
    expect(await dump()).toEqual(before);
  });

  it('writes a quality only when it is given: an empty one means unchanged, and a value beside it is good', async () => {
    await bus.telemetry.c2m('1001', 1_700_000_000_000, [{ type: 'm', id: 1, value: null, quality: 'comm-failure' }, { type: 'm', id: 2, value: 4, quality: 'good' }]);
    await bus.telemetry.c2m('1001', 1_700_000_000_100, [{ type: 'm', id: 2, value: 5, quality: null }]);
    expect(await raw.hgetall('comsrv:1001:m:q')).toEqual({ 1: 'comm-failure', 2: 'good' });
    expect(await raw.hgetall('comsrv:1001:m:ts')).toEqual({ 1: '1700000000000', 2: '1700000000100' });
    expect(await raw.hgetall('modsrv:pv1:measurement:q')).toEqual({ P: 'comm-failure', Q: 'good' });
    expect(await raw.hget('modsrv:pv1:measurement:ts', 'Q')).toBe('1700000000100');
    const entries = await raw.xrange(KEYS.history, '-', '+');
    expect(entries[1]![1][7]).toBe('m 2 5.000000 \n');
  });

  const KEYS16 = ['mapping:c2m', 'hissrv:queue', 'cloud:queue', 'stats:queues', ...Array.from({ length: 12 }, (_, i) => `comsrv:9:${i}`)];

  it('rejects what would not be a plain decimal (hex, spaces, inf) from a raw client', async () => {
    for (const v of ['0x10', 'inf', '1,5', '--1', '1e']) {
      await expect(raw.fcall('c2m', 16, ...KEYS16, '9', 1, 5, 5, `m 1 ${v} good\n`)).rejects.toThrow('is not a number');
    }
    await expect(raw.fcall('c2m', 16, ...KEYS16, 'bad"id', 1, 5, 5, 'm 1 1 good\n')).rejects.toThrow('channel must hold only');
  });

  it.each([
    ['a line without its newline', 'm 1 1 good'],
    ['a missing field', 'm 1 good\n'],
    ['a space too many', 'm 1  1 good\n'],
    ['an unknown point type', 'x 1 1 good\n'],
    ['a point id that is not a number', 'm one 1 good\n'],
    ['an empty line', '\nm 1 1 good\n'],
  ])('rejects %s in the points text from a raw client, writing nothing', async (_, text) => {
    const before = await dump();
    await expect(raw.fcall('c2m', 16, ...KEYS16, '9', 1, 5, 5, `m 2 2 good\n${text}`)).rejects.toThrow('point 2 is not "type id value quality"');
    expect(await dump()).toEqual(before);
  });

  it('rejects a bad timestamp, key or argument count, or a point with neither value nor quality, writing nothing', async () => {
    const before = await dump();
    await expect(raw.fcall('c2m', 1, 'mapping:c2m', '1001', 'yesterday', 5, 5, 'm 1 1 good\n')).rejects.toThrow('c2m needs 16 keys');
    await expect(raw.fcall('c2m', 16, ...KEYS16, '9', 'yesterday', 5, 5, 'm 1 1 good\n')).rejects.toThrow('ts must be a positive integer');
    await expect(raw.fcall('c2m', 16, ...KEYS16, '9', 1, 5, 5, 'm', 1, '1', 'good')).rejects.toThrow('c2m needs 5 arguments');
    await expect(raw.fcall('c2m', 16, ...KEYS16, '9', 1, 5, 5, '')).rejects.toThrow('no points');
    await expect(raw.fcall('c2m', 16, ...KEYS16, '9', 1, 5, 5, 'm 1 1 good\nm 2  \n')).rejects.toThrow('neither a value nor a quality');
    expect(await dump()).toEqual(before);
  });

  it('bounds the outboxes with MAXLEN and counts exactly what was trimmed', async () => {
    for (let i = 0; i < 400; i++) await bus.telemetry.c2m('1001', 1_700_000_000_000 + i, [{ type: 'm', id: 1, value: i, quality: 'good' }]);
    const stats = await bus.telemetry.queueStats();
    expect(stats.historyLen).toBeLessThan(400);
    expect(stats.historyLen + Number(stats.dropped['hissrv:queue:dropped'])).toBe(400);
    expect(stats.cloudLen + Number(stats.dropped['cloud:queue:dropped'])).toBe(400);
  });

  it('reloads the library after FUNCTION FLUSH and the call goes through', async () => {
    await raw.call('FUNCTION', 'FLUSH');
    await expect(raw.fcall('c2m', 0)).rejects.toThrow('Function not found');
    await bus.telemetry.c2m('1001', 1_700_000_000_000, [{ type: 'm', id: 1, value: 3, quality: 'good' }]);
    expect(await raw.hget('modsrv:pv1:measurement', 'P')).toBe('3.000000');
    expect(await bus.site.libraryVersion()).toBe('5');
  });

  it('restores the library and the mapping when Redis lost everything', async () => {
    await raw.flushall();
    await raw.call('FUNCTION', 'FLUSH');
    await bus.telemetry.c2m('1002', 1_700_000_000_000, [{ type: 's', id: 5, value: 1, quality: 'good' }]);
    expect(await raw.hget('mapping:c2m', '1002:s:5')).toBe('bess:on');
    expect(await raw.hget('modsrv:bess:measurement', 'on')).toBe('1.000000');
  });

  it('model_set writes calculated values and rejects bad ones without writing', async () => {
    await bus.telemetry.modelSet('site', 1_700_000_000_000, [{ name: 'load', value: 4.25, quality: 'stale' }]);
    expect(await raw.hget('modsrv:site:measurement', 'load')).toBe('4.250000');
    expect(await raw.hget('modsrv:site:measurement:q', 'load')).toBe('stale');
    const before = await dump();
    await expect(raw.fcall('model_set', 5, 'modsrv:site:measurement', 'a', 'b', 'hissrv:queue', 'stats:queues', 'site', 1, 10, 'load', 'NaN?', 'good')).rejects.toThrow('is not a number');
    expect(await dump()).toEqual(before);
  });

  it('site_load swaps in the staged mapping atomically, and a malformed stage is rejected whole', async () => {
    expect(await raw.hgetall('mapping:m2c')).toEqual({ 'pv1:limit': '1001:a:1|0|100' });
    const before = await dump();
    await expect(raw.fcall('site_stage', 2, 'mapping:c2m:next', 'mapping:m2c:next', 'c2m', '1:m:1', 'a:b', 'bad key', 'c:d')).rejects.toThrow('bad channel point');
    await expect(raw.fcall('site_stage', 2, 'mapping:c2m:next', 'mapping:m2c:next', 'm2c', 'a:b', '1:m:1||')).rejects.toThrow('bad control target');
    expect(await dump()).toEqual(before);
    await expect(raw.fcall('site_load', 6, 'mapping:c2m', 'mapping:m2c', 'site:config', 'actors', 'mapping:c2m:next', 'mapping:m2c:next', '{}', 5, 0)).rejects.toThrow('0 mapping pairs are staged, expected 5');
    expect(await dump()).toEqual(before);
  });

  it('loads a large site (100k mapped points) in stages', async () => {
    const mapping = new Map<string, string>();
    for (let c = 0; c < 100; c++) for (let p = 1; p <= 1000; p++) mapping.set(`ch${c}:m:${p}`, `m${c}:p${p}`);
    await bus.site.load({ site: 'big', json: '{"site":"big"}', mapping, controls: new Map() });
    expect(await raw.hlen('mapping:c2m')).toBe(100_000);
    expect(await raw.hget('mapping:c2m', 'ch99:m:1000')).toBe('m99:p1000');
    expect(await raw.exists('mapping:c2m:next')).toBe(0);
  });
});
