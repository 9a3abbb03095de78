/**
 * The Functions library against a private redis-server: c2m is atomic,
 * rejects bad arguments without writing anything, bounds its outboxes and
 * counts what it drops; the library and mapping come back after FUNCTION FLUSH
 * and after Redis lost everything.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { usePrivateRedis, wrapper } from '../helpers/servers.js';
import { parseChannelUpdate } from '../../runtime/domain/c2mBatch.js';
import { formatValue } from '../../runtime/domain/telemetry.js';
import { KEYS, POINT_TYPES } from '../../runtime/redis/keys.js';
import { LIBRARY_VERSION } from '../../runtime/redis/library.js';
import type { VoltageRedis } from '../../runtime/redis/voltageRedis.js';
import { RedisFunctionError } from '../../runtime/errors.js';

const site = {
  site: 't',
  json: '{"site":"t"}',
  mapping: new Map([
    ['1001:m:1', 'pv1:P'],
    ['1001:m:2', 'pv1:Q'],
    ['1002:s:5', 'bess:on'],
  ]),
  controls: new Map([['pv1:limit', '1001:a:1|0|100']]),
  models: ['pv1', 'bess'],
};

const t = usePrivateRedis({ outboxMaxMB: 0.005 }); // ~5 kB of outbox: a few dozen entries
beforeEach(async () => {
  await t.raw.flushall();
  await t.bus.site.load(site);
  // A consumer (history, a cloud link) makes the outbox with its group; without one nothing is written there.
  await t.raw.xgroup('CREATE', KEYS.outbox, 'test', '0', 'MKSTREAM');
});

async function dump(): Promise<Record<string, string>> {
  const keys = (await t.raw.keys('*')).sort();
  const out: Record<string, string> = {};
  for (const k of keys) out[k] = JSON.stringify(await t.raw.call('DUMP', k));
  return out;
}

describe('c2m', () => {
  it('writes the channel hashes, maps to models, notifies each touched model once, and appends to the outbox', async () => {
    const sub = t.raw.duplicate();
    const got: Array<[string, string]> = [];
    sub.on('message', (ch: string, msg: string) => got.push([ch, msg]));
    await sub.subscribe('modsrv:pv1:update', 'modsrv:bess:update', 'comsrv:1001:update');
    const r = await t.bus.telemetry.c2m('1001', 1_700_000_000_000, [
      { type: 'm', id: 1, value: 12.5, quality: 'good' },
      { type: 'm', id: 2, value: null, quality: 'bad' },
      { type: 'm', id: 3, value: 7, quality: 'good' },
    ]);
    expect(r).toEqual({ points: 3, models: 1, outboxDropped: 0 });
    expect(await t.raw.hgetall('comsrv:1001:m')).toEqual({ 1: '12.500000', 3: '7.000000' });
    expect(await t.raw.hgetall('comsrv:1001:m:ts')).toEqual({ 1: '1700000000000', 2: '1700000000000', 3: '1700000000000' });
    expect(await t.raw.hgetall('comsrv:1001:m:q')).toEqual({ 1: 'good', 2: 'bad', 3: 'good' });
    expect(await t.raw.hgetall('modsrv:pv1:measurement')).toEqual({ P: '12.500000' });
    expect(await t.raw.hgetall('modsrv:pv1:measurement:q')).toEqual({ P: 'good', Q: 'bad' });
    for (let i = 0; i < 50 && got.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
    sub.disconnect();
    expect(got).toHaveLength(2);
    expect(got[0]![0]).toBe('modsrv:pv1:update');
    expect(JSON.parse(got[0]![1])).toEqual({ ts: 1_700_000_000_000, src: 'c2m', v: { P: 12.5 }, q: { Q: 'bad' } });
    const [entry] = await t.raw.xrange(KEYS.outbox, '-', '+');
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
    expect(await t.raw.xlen(KEYS.outbox)).toBe(1);
  });

  it('builds a model notification only when someone listens: a subscriber of its channel or any pattern', async () => {
    const count = async () => Number(/cmdstat_publish:calls=(\d+)/.exec(await t.raw.info('commandstats'))?.[1] ?? 0);
    const write = (ts: number) => t.bus.telemetry.c2m('1001', ts, [{ type: 'm', id: 1, value: ts / 1e12, quality: 'good' }]);
    // Subscribers of earlier tests are gone (a disconnect takes a moment to reach Redis).
    const quiet = async () => {
      for (let i = 0; i < 100; i++) {
        const numsub = (await t.raw.call('PUBSUB', 'NUMSUB', 'modsrv:pv1:update')) as [string, number];
        if (Number(await t.raw.call('PUBSUB', 'NUMPAT')) === 0 && numsub[1] === 0) return;
        await new Promise((r) => setTimeout(r, 10));
      }
    };
    await quiet();
    await t.raw.config('RESETSTAT');
    await write(1_700_000_000_000);
    expect(await count()).toBe(1); // the channel's only
    expect(await t.raw.hget('modsrv:pv1:measurement', 'P')).toBe('1.700000'); // the model is written all the same
    for (const [how, channel] of [
      ['subscribe', 'modsrv:pv1:update'],
      ['psubscribe', 'nothing:*'],
    ] as const) {
      const sub = t.raw.duplicate();
      const got: string[] = [];
      sub.on('message', (_ch: string, msg: string) => got.push(msg));
      await (how === 'subscribe' ? sub.subscribe(channel) : sub.psubscribe(channel));
      await t.raw.config('RESETSTAT');
      await write(1_700_000_000_100);
      expect(await count()).toBe(2);
      for (let i = 0; i < 50 && how === 'subscribe' && got.length < 1; i++) await new Promise((r) => setTimeout(r, 10));
      if (how === 'subscribe') expect(JSON.parse(got[0]!)).toEqual({ ts: 1_700_000_000_100, src: 'c2m', v: { P: 1.7 } });
      sub.disconnect();
      await quiet();
    }
  });

  it("the mapping as loaded, read at once and in HSCAN rounds (the gateway's), entry for entry", async () => {
    expect(await t.bus.site.c2mMapping()).toEqual(site.mapping);
    const big = new Map<string, string>();
    for (let c = 0; c < 30; c++) for (let p = 1; p <= 100; p++) big.set(`${2000 + c}:m:${p}`, `m${c}:v${p}`);
    await t.bus.site.load({ ...site, mapping: big, models: [...new Set([...big.values()].map((v) => v.split(':')[0]!))] });
    const rounds: Array<Array<readonly [string, string]>> = [];
    for await (const round of t.bus.site.c2mMappingRounds(500)) rounds.push(round);
    // A hash this size is a hashtable: HSCAN answers in several rounds (COUNT is a hint, an entry may come twice).
    expect(rounds.length).toBeGreaterThan(2);
    expect(new Map(rounds.flat())).toEqual(big);
    expect(await t.bus.site.c2mMapping()).toEqual(big);
  });

  it('writes nothing to the outbox while no consumer has made it, and skips the mapping for a channel that feeds no model', async () => {
    await t.raw.del(KEYS.outbox);
    await t.bus.telemetry.c2m('1001', 1_700_000_000_000, [{ type: 'm', id: 1, value: 1, quality: 'good' }]);
    expect(await t.raw.exists(KEYS.outbox)).toBe(0);
    expect((await t.raw.smembers(KEYS.mappingC2mChannels)).sort()).toEqual(['1001', '1002']);
    const r = await t.bus.telemetry.c2m('7', 1_700_000_000_000, [{ type: 'm', id: 1, value: 1, quality: 'good' }]);
    expect(r).toEqual({ points: 1, models: 0, outboxDropped: 0 });
    expect(await t.raw.hget('comsrv:7:m', '1')).toBe('1.000000');
  });

  it('a site lost from Redis while the Functions stayed (FLUSHALL) is loaded again by the next c2m; the next values reach the models', async () => {
    await t.raw.flushall(); // the data goes; the Functions stay (only FUNCTION FLUSH removes them)
    expect(await t.bus.site.libraryVersion()).toBe(LIBRARY_VERSION);
    expect(await t.raw.exists(KEYS.siteConfig)).toBe(0);
    await t.bus.telemetry.c2m('1001', 1_700_000_000_000, [{ type: 'm', id: 1, value: 1, quality: 'good' }]);
    for (let i = 0; i < 100 && (await t.raw.exists(KEYS.siteConfig)) === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(await t.raw.hget(KEYS.mappingC2m, '1001:m:1')).toBe('pv1:P');
    await t.bus.telemetry.c2m('1001', 1_700_000_000_100, [{ type: 'm', id: 1, value: 2, quality: 'good' }]);
    expect(await t.raw.hget('modsrv:pv1:measurement', 'P')).toBe('2.000000');
  });

  it.each([
    // Values and ids are checked where they are made (C2mBatch), the rest by c2m.
    ['a value that is not a number', [{ type: 'm', id: 1, value: Number.NaN, quality: 'good' }], 'is not a finite number', RangeError],
    ['an unknown quality', [{ type: 'm', id: 1, value: 1, quality: 'great' }], 'quality of m:1 must be', RedisFunctionError],
    ['an unknown point type', [{ type: 'x', id: 1, value: 1, quality: 'good' }], 'is not "type id value quality" with type m, s, c or a', RedisFunctionError],
    ['a point id that is not a number', [{ type: 'm', id: Number.NaN, value: 1, quality: 'good' }], 'is not a non-negative integer', RangeError],
  ])('rejects %s and writes nothing, even when good points come first', async (_, bad, message, kind) => {
    await t.bus.telemetry.c2m('1001', 1_700_000_000_000, [{ type: 'm', id: 1, value: 1, quality: 'good' }]);
    const before = await dump();
    const batch = [{ type: 'm', id: 2, value: 2, quality: 'good' }, ...bad] as Parameters<VoltageRedis['telemetry']['c2m']>[2];
    const err = await t.bus.telemetry.c2m('1001', 1_700_000_000_001, batch).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(kind);
    expect((err as Error).message).toContain(message);
    expect(await dump()).toEqual(before);
  });

  it('writes a quality only when it is given: an empty one means unchanged, and a value beside it is good', async () => {
    await t.bus.telemetry.c2m('1001', 1_700_000_000_000, [
      { type: 'm', id: 1, value: null, quality: 'comm-failure' },
      { type: 'm', id: 2, value: 4, quality: 'good' },
    ]);
    await t.bus.telemetry.c2m('1001', 1_700_000_000_100, [{ type: 'm', id: 2, value: 5, quality: null }]);
    expect(await t.raw.hgetall('comsrv:1001:m:q')).toEqual({ 1: 'comm-failure', 2: 'good' });
    expect(await t.raw.hgetall('comsrv:1001:m:ts')).toEqual({ 1: '1700000000000', 2: '1700000000100' });
    expect(await t.raw.hgetall('modsrv:pv1:measurement:q')).toEqual({ P: 'comm-failure', Q: 'good' });
    expect(await t.raw.hget('modsrv:pv1:measurement:ts', 'Q')).toBe('1700000000100');
    const entries = await t.raw.xrange(KEYS.outbox, '-', '+');
    expect(entries[1]![1][7]).toBe('m 2 5.000000 \n');
  });

  const KEYS18 = [
    'mapping:c2m',
    'mapping:c2m:channels',
    'outbox',
    'stats:outbox',
    'site:config',
    ...Array.from({ length: 12 }, (_, i) => `comsrv:9:${i}`),
    'mapping:c2m:gen',
  ];

  it('property: points of every type in any order, with or without a value or quality, land in their own hashes and in the models they feed (the last write of a point wins)', async () => {
    const point = fc
      .record({
        type: fc.constantFrom('m' as const, 's' as const, 'c' as const, 'a' as const),
        id: fc.integer({ min: 0, max: 12 }),
        value: fc.option(
          fc.integer({ min: -100_000, max: 100_000 }).map((v) => v / 16),
          { nil: null },
        ),
        quality: fc.option(fc.constantFrom('good' as const, 'stale' as const, 'bad' as const, 'comm-failure' as const), { nil: null }),
      })
      .filter((p) => p.value !== null || p.quality !== null);
    await fc.assert(
      fc.asyncProperty(fc.array(fc.array(point, { minLength: 1, maxLength: 30 }), { minLength: 1, maxLength: 3 }), async (polls) => {
        await t.raw.flushall();
        await t.bus.site.load(site);
        const want: Record<string, Record<string, string>> = {};
        const put = (key: string, field: string | number, v: string) => {
          want[key] ??= {};
          want[key][field] = v;
        };
        const write = (base: string, field: string | number, p: (typeof polls)[number][number], ts: number) => {
          if (p.value !== null) put(base, field, formatValue(p.value));
          put(`${base}:ts`, field, String(ts));
          if (p.quality !== null) put(`${base}:q`, field, p.quality);
        };
        for (const [i, points] of polls.entries()) {
          const ts = 1_700_000_000_000 + i;
          await t.bus.telemetry.c2m('1001', ts, points);
          for (const p of points) {
            write(`comsrv:1001:${p.type}`, p.id, p, ts);
            const target = site.mapping.get(`1001:${p.type}:${p.id}`); // 1001:m:1 → pv1:P, 1001:m:2 → pv1:Q
            if (target) write(`modsrv:${target.split(':')[0]}:measurement`, target.split(':')[1]!, p, ts);
          }
        }
        const got: Record<string, Record<string, string>> = {};
        for (const k of [...(await t.raw.keys('comsrv:1001:*')), ...(await t.raw.keys('modsrv:*:measurement*'))]) got[k] = await t.raw.hgetall(k);
        expect(got).toEqual(want);
      }),
      { numRuns: 40 },
    );
  });

  it('rejects what would not be a plain decimal (hex, spaces, inf) from a t.raw client', async () => {
    for (const v of ['0x10', 'inf', '1,5', '--1', '1e', '1e+21']) {
      await expect(t.raw.fcall('c2m', 18, ...KEYS18, '9', 1, 5000, `m 1 ${v} good\n`)).rejects.toThrow('a decimal value');
    }
    for (const v of ['-', '.', '-.']) await expect(t.raw.fcall('c2m', 18, ...KEYS18, '9', 1, 5000, `m 1 ${v} good\n`)).rejects.toThrow('is not a number');
    await expect(t.raw.fcall('c2m', 18, ...KEYS18, 'bad"id', 1, 5000, 'm 1 1 good\n')).rejects.toThrow('channel must hold only');
  });

  it.each([
    ['a line without its newline', 'm 1 1 good'],
    ['a missing field', 'm 1 good\n'],
    ['a space too many', 'm 1  1 good\n'],
    ['an unknown point type', 'x 1 1 good\n'],
    ['a point id that is not a number', 'm one 1 good\n'],
    ['an empty line', '\nm 1 1 good\n'],
  ])('rejects %s in the points text from a t.raw client, writing nothing', async (_, text) => {
    const before = await dump();
    await expect(t.raw.fcall('c2m', 18, ...KEYS18, '9', 1, 5000, `m 2 2 good\n${text}`)).rejects.toThrow('point 2 is not "type id value quality"');
    expect(await dump()).toEqual(before);
  });

  it('rejects a bad timestamp, key or argument count, or a point with neither value nor quality, writing nothing', async () => {
    const before = await dump();
    await expect(t.raw.fcall('c2m', 1, 'mapping:c2m', '1001', 'yesterday', 5000, 'm 1 1 good\n')).rejects.toThrow('c2m needs 18 keys');
    await expect(t.raw.fcall('c2m', 18, ...KEYS18, '9', 'yesterday', 5000, 'm 1 1 good\n')).rejects.toThrow('ts must be a positive integer');
    await expect(t.raw.fcall('c2m', 18, ...KEYS18, '9', 1, 5000, 'm', 1, '1', 'good')).rejects.toThrow('c2m needs 4 arguments');
    await expect(t.raw.fcall('c2m', 18, ...KEYS18, '9', 1, 0, 'm 1 1 good\n')).rejects.toThrow('outbox bound must be a positive integer');
    await expect(t.raw.fcall('c2m', 18, ...KEYS18, '9', 1, 5000, '')).rejects.toThrow('no points');
    await expect(t.raw.fcall('c2m', 18, ...KEYS18, '9', 1, 5000, 'm 1 1 good\nm 2  \n')).rejects.toThrow('neither a value nor a quality');
    expect(await dump()).toEqual(before);
  });

  it('bounds the outbox in bytes: unread entries past the bound are dropped and counted exactly', async () => {
    let dropped = 0;
    for (let i = 0; i < 400; i++)
      dropped += (await t.bus.telemetry.c2m('1001', 1_700_000_000_000 + i, [{ type: 'm', id: 1, value: i, quality: 'good' }])).outboxDropped;
    const stats = await t.bus.telemetry.outboxStats();
    expect(stats.length).toBeLessThan(400);
    expect(stats.length + stats.dropped).toBe(400);
    expect(stats.dropped).toBe(dropped);
    expect(stats.bytes).toBeLessThanOrEqual(0.005 * 2 ** 20);
    // The newest entries are the ones kept.
    const [last] = await t.raw.xrevrange(KEYS.outbox, '+', '-', 'COUNT', 1);
    expect(last![1][5]).toBe(String(1_700_000_000_399));
    expect(stats.groups).toEqual([{ name: 'test', pending: 0, lag: stats.length }]);
    // Once the group has read everything there is, nothing is unread, whatever XINFO's lag goes on counting
    // of the entries dropped before it read them.
    const readAll = async () => {
      const read = (await t.raw.xreadgroup('GROUP', 'test', 'c', 'COUNT', 1000, 'STREAMS', KEYS.outbox, '>')) as Array<[string, Array<[string, string[]]>]>;
      await t.raw.xack(KEYS.outbox, 'test', ...read[0]![1].map(([id]) => id));
    };
    await readAll();
    expect((await t.bus.telemetry.outboxStats()).groups).toEqual([{ name: 'test', pending: 0, lag: 0 }]);
    // Behind again, past the bound (entries dropped after the group's last read), then caught up.
    for (let i = 0; i < 400; i++) await t.bus.telemetry.c2m('1001', 1_700_000_001_000 + i, [{ type: 'm', id: 1, value: i, quality: 'good' }]);
    const behind = await t.bus.telemetry.outboxStats();
    expect(behind.dropped).toBeGreaterThan(stats.dropped);
    // Its last read is older than every entry left: all of them are unread.
    expect(behind.groups[0]!.lag).toBe(behind.length);
    // Ten read, not acknowledged: pending, no longer unread.
    const ten = (await t.raw.xreadgroup('GROUP', 'test', 'c', 'COUNT', 10, 'STREAMS', KEYS.outbox, '>')) as Array<[string, Array<[string, string[]]>]>;
    expect((await t.bus.telemetry.outboxStats()).groups).toEqual([{ name: 'test', pending: 10, lag: behind.length - 10 }]);
    await t.raw.xack(KEYS.outbox, 'test', ...ten[0]![1].map(([id]) => id));
    await readAll();
    expect((await t.bus.telemetry.outboxStats()).groups).toEqual([{ name: 'test', pending: 0, lag: 0 }]);
  });

  it('trims what every consumer has read and acknowledged without counting it as dropped; keeps what one still has pending', async () => {
    await t.raw.xgroup('CREATE', KEYS.outbox, 'slow', '0');
    let pendingId = '';
    for (let i = 0; i < 400; i++) {
      await t.bus.telemetry.c2m('1001', 1_700_000_000_000 + i, [{ type: 'm', id: 1, value: i, quality: 'good' }]);
      // 'test' reads and acknowledges everything; 'slow' reads everything, and leaves its first entry pending.
      for (const group of ['test', 'slow']) {
        const got = (await t.raw.xreadgroup('GROUP', group, 'c', 'COUNT', 100, 'STREAMS', KEYS.outbox, '>')) as Array<
          [string, Array<[string, string[]]>]
        > | null;
        const ids = got?.[0]?.[1].map(([id]) => id) ?? [];
        if (group === 'slow' && pendingId === '' && ids.length) pendingId = ids.shift()!;
        if (ids.length) await t.raw.xack(KEYS.outbox, group, ...ids);
      }
    }
    let stats = await t.bus.telemetry.outboxStats();
    // The pending entry holds the trim back: the bound drops the oldest (counted), never silently.
    expect(stats.length + stats.dropped).toBeLessThanOrEqual(400);
    const before = stats.dropped;
    await t.raw.xack(KEYS.outbox, 'slow', pendingId);
    for (let i = 0; i < 400; i++)
      await t.bus.telemetry.c2m('1001', 1_700_000_001_000 + i, [{ type: 'm', id: 1, value: i, quality: 'good' }]).then(async () => {
        for (const group of ['test', 'slow']) {
          const got = (await t.raw.xreadgroup('GROUP', group, 'c', 'COUNT', 100, 'STREAMS', KEYS.outbox, '>')) as Array<
            [string, Array<[string, string[]]>]
          > | null;
          const ids = got?.[0]?.[1].map(([id]) => id) ?? [];
          if (ids.length) await t.raw.xack(KEYS.outbox, group, ...ids);
        }
      });
    stats = await t.bus.telemetry.outboxStats();
    expect(stats.dropped).toBe(before); // everything read and acknowledged: trimmed, not dropped
    expect(stats.length).toBeLessThan(100);
  });

  it("a group's hold keeps what it acknowledged from the trim, from the held id on; without it, all of it is trimmed", async () => {
    const ids: string[] = [];
    const readAndAck = async () => {
      const got = (await t.raw.xreadgroup('GROUP', 'test', 'c', 'COUNT', 1000, 'STREAMS', KEYS.outbox, '>')) as Array<
        [string, Array<[string, string[]]>]
      > | null;
      const read = got?.[0]?.[1].map(([id]) => id) ?? [];
      ids.push(...read);
      if (read.length) await t.raw.xack(KEYS.outbox, 'test', ...read);
    };
    // 40 entries read and acknowledged, the 31st held (a history writer's window); then enough adds, each
    // read and acknowledged, for several trims.
    for (let i = 0; i < 40; i++) await t.bus.telemetry.c2m('1001', 1_700_000_000_000 + i, [{ type: 'm', id: 1, value: i, quality: 'good' }]);
    await readAndAck();
    const held = ids[30]!;
    await t.raw.hset(KEYS.outboxStats, 'hold:test', held);
    for (let i = 0; i < 60; i++) {
      await t.bus.telemetry.c2m('1001', 1_700_000_001_000 + i, [{ type: 'm', id: 1, value: i, quality: 'good' }]);
      await readAndAck();
    }
    const [first] = await t.raw.xrange(KEYS.outbox, '-', '+', 'COUNT', 1);
    expect(first![0]).toBe(held);
    expect((await t.bus.telemetry.outboxStats()).dropped).toBe(0);
    // The hold released: the next trims take everything acknowledged.
    await t.raw.hdel(KEYS.outboxStats, 'hold:test');
    for (let i = 0; i < 40; i++) {
      await t.bus.telemetry.c2m('1001', 1_700_000_002_000 + i, [{ type: 'm', id: 1, value: i, quality: 'good' }]);
      await readAndAck();
    }
    expect(await t.raw.xlen(KEYS.outbox)).toBeLessThan(40);
    expect((await t.bus.telemetry.outboxStats()).dropped).toBe(0);
  });

  it('reloads the library after FUNCTION FLUSH and the call goes through', async () => {
    await t.raw.call('FUNCTION', 'FLUSH');
    await expect(t.raw.fcall('c2m', 0)).rejects.toThrow('Function not found');
    await t.bus.telemetry.c2m('1001', 1_700_000_000_000, [{ type: 'm', id: 1, value: 3, quality: 'good' }]);
    expect(await t.raw.hget('modsrv:pv1:measurement', 'P')).toBe('3.000000');
    expect(await t.bus.site.libraryVersion()).toBe(LIBRARY_VERSION);
  });

  it('restores the library and the mapping when Redis lost everything', async () => {
    await t.raw.flushall();
    await t.raw.call('FUNCTION', 'FLUSH');
    await t.bus.telemetry.c2m('1002', 1_700_000_000_000, [{ type: 's', id: 5, value: 1, quality: 'good' }]);
    expect(await t.raw.hget('mapping:c2m', '1002:s:5')).toBe('bess:on');
    expect(await t.raw.hget('modsrv:bess:measurement', 'on')).toBe('1.000000');
  });

  it('a mapping changed by a site_load that ran in another Lua state (effects replicated to a replica, later promoted) is picked up: the generation moved on', async () => {
    const P = (model: string) => t.raw.hget(`modsrv:${model}:measurement`, 'P');
    // site_load started the generation from the clock (FLUSHALL in beforeEach): never back to a small number.
    const gen0 = Number(await t.raw.get(KEYS.mappingC2mGeneration));
    expect(gen0).toBeGreaterThan(1_700_000_000_000);
    await t.bus.site.load(site);
    expect(Number(await t.raw.get(KEYS.mappingC2mGeneration))).toBe(gen0 + 1);

    await t.bus.telemetry.c2m('1001', 1_700_000_000_000, [{ type: 'm', id: 1, value: 1, quality: 'good' }]);
    expect(await P('pv1')).toBe('1.000000');
    // What a replica receives of a site_load run on its master: the writes, not the call (this
    // Lua state keeps its cache). The mapping alone is not looked at again: the targets are cached.
    await t.raw.hset(KEYS.mappingC2m, '1001:m:1', 'pv2:P');
    await t.bus.telemetry.c2m('1001', 1_700_000_000_001, [{ type: 'm', id: 1, value: 2, quality: 'good' }]);
    expect(await P('pv2')).toBeNull();
    // With the generation moved on as site_load moves it, c2m builds its targets again.
    await t.raw.incr(KEYS.mappingC2mGeneration);
    await t.bus.telemetry.c2m('1001', 1_700_000_000_002, [{ type: 'm', id: 1, value: 3, quality: 'good' }]);
    expect(await P('pv2')).toBe('3.000000');
    expect(await P('pv1')).toBe('2.000000');

    // The same for c2m_group (the generation's key is its last).
    const hashes = POINT_TYPES.flatMap((ty) => {
      const base = KEYS.channel('1001', ty);
      return [base, KEYS.timestamps(base), KEYS.qualities(base)];
    });
    const group = (v: number) =>
      t.raw.fcall(
        'c2m_group',
        18,
        KEYS.mappingC2m,
        KEYS.mappingC2mChannels,
        KEYS.outbox,
        KEYS.outboxStats,
        KEYS.siteConfig,
        ...hashes,
        KEYS.mappingC2mGeneration,
        5000,
        '1001',
        1_700_000_000_010 + v,
        `m 1 ${v} good\n`,
      );
    await t.raw.hset(KEYS.mappingC2m, '1001:m:1', 'pv3:P');
    await group(4);
    expect(await P('pv3')).toBeNull();
    await t.raw.incr(KEYS.mappingC2mGeneration);
    await group(5);
    expect(await P('pv3')).toBe('5');
    // A generation gone (FLUSHALL on the master, replicated) counts as moved on too.
    await t.raw.hset(KEYS.mappingC2m, '1001:m:1', 'pv4:P');
    await t.raw.del(KEYS.mappingC2mGeneration);
    await group(6);
    expect(await P('pv4')).toBe('6');
  });

  it('property: batches committed as one group (c2m_group) leave Redis as the same batches one call each, notifications and outbox included; a malformed one fails alone', async () => {
    const grouped = wrapper(t.server, { outboxMaxMB: 0.005, commitLingerMs: 0 });
    const sub = t.raw.duplicate();
    let heard: string[] = [];
    sub.on('pmessage', (_p: string, ch: string, msg: string) => heard.push(`${ch} ${msg}`));
    await sub.psubscribe('comsrv:*', 'modsrv:*');
    const point = fc.record({
      type: fc.constantFrom('m' as const, 's' as const),
      id: fc.constantFrom(1, 2, 3, 5),
      value: fc.option(
        fc.integer({ min: -1000, max: 1000 }).map((v) => v / 8),
        { nil: null },
      ),
      quality: fc.constantFrom('good' as const, 'bad' as const, 'comm-failure' as const),
    });
    const batch = fc.record({ channel: fc.constantFrom('1001', '1002', '1003'), points: fc.array(point, { minLength: 1, maxLength: 6 }), bad: fc.boolean() });
    /** Redis as the test sees it: every key but the outbox's stream ids and the mapping's generation (from the clock), and what was published. */
    const state = async () => {
      const keys = (await t.raw.keys('*')).filter((k) => k !== KEYS.outbox && k !== KEYS.mappingC2mGeneration).sort();
      const out: Record<string, unknown> = {};
      for (const k of keys) {
        const type = await t.raw.type(k);
        out[k] = type === 'hash' ? await t.raw.hgetall(k) : type === 'set' ? (await t.raw.smembers(k)).sort() : type === 'string' ? await t.raw.get(k) : type;
      }
      out.outbox = (await t.raw.xrange(KEYS.outbox, '-', '+')).map(([, f]) => f);
      for (let i = 0; i < 100 && heard.length < 1; i++) await new Promise((r) => setTimeout(r, 5));
      await new Promise((r) => setTimeout(r, 20));
      out.heard = heard.sort();
      heard = [];
      return out;
    };
    const reset = async () => {
      await t.raw.flushall();
      await t.bus.site.load(site);
      await t.raw.xgroup('CREATE', KEYS.outbox, 'test', '0', 'MKSTREAM');
      heard = [];
    };
    try {
      await fc.assert(
        fc.asyncProperty(fc.array(batch, { minLength: 2, maxLength: 5 }), async (batches) => {
          // A malformed batch (no points: Lua refuses it); the others must not mind it.
          const send = (bus: VoltageRedis, b: (typeof batches)[number], i: number) =>
            bus.telemetry.c2m(b.channel, 1_700_000_000_000 + i, b.bad ? [] : b.points).then(
              (r) => JSON.stringify(r),
              (e: unknown) => (e instanceof RedisFunctionError ? `rejected: ${e.message}` : String(e)),
            );
          await reset();
          const one: string[] = [];
          for (const [i, b] of batches.entries()) one.push(await send(t.bus, b, i));
          const alone = await state();
          await reset();
          // Issued in one turn of the event loop: one call for all (the FCALL count says so).
          const fcalls = async () => Number(/cmdstat_fcall:calls=(\d+)/.exec(await t.raw.info('commandstats'))?.[1] ?? 0);
          const before = await fcalls();
          const together = await Promise.all(batches.map((b, i) => send(grouped, b, i)));
          expect(await fcalls()).toBe(before + 1);
          expect(together).toEqual(one);
          expect(one.filter((r) => r.startsWith('rejected')).length).toBe(batches.filter((b) => b.bad).length);
          expect(await state()).toEqual(alone);
        }),
        { numRuns: 25 },
      );
    } finally {
      sub.disconnect();
      await grouped.close();
    }
  });

  it('model_set writes calculated values and rejects bad ones without writing', async () => {
    await t.bus.telemetry.modelSet('site', 1_700_000_000_000, [{ name: 'load', value: 4.25, quality: 'stale' }]);
    expect(await t.raw.hget('modsrv:site:measurement', 'load')).toBe('4.250000');
    expect(await t.raw.hget('modsrv:site:measurement:q', 'load')).toBe('stale');
    const before = await dump();
    await expect(
      t.raw.fcall('model_set', 5, 'modsrv:site:measurement', 'a', 'b', 'outbox', 'stats:outbox', 'site', 1, 5000, 'load', 'NaN?', 'good'),
    ).rejects.toThrow('is not a number');
    expect(await dump()).toEqual(before);
  });

  it('site_load swaps in the staged mapping atomically, and a malformed stage is rejected whole', async () => {
    expect(await t.raw.hgetall('mapping:m2c')).toEqual({ 'pv1:limit': '1001:a:1|0|100' });
    const before = await dump();
    await expect(t.raw.fcall('site_stage', 2, 'mapping:c2m:next', 'mapping:m2c:next', 'c2m', '1:m:1', 'a:b', 'bad key', 'c:d')).rejects.toThrow(
      'bad channel point',
    );
    await expect(t.raw.fcall('site_stage', 2, 'mapping:c2m:next', 'mapping:m2c:next', 'm2c', 'a:b', '1:m:1||')).rejects.toThrow('bad control target');
    expect(await dump()).toEqual(before);
    const LOAD_KEYS = [
      'mapping:c2m',
      'mapping:m2c',
      'site:config',
      'actors',
      'mapping:c2m:next',
      'mapping:m2c:next',
      'mapping:c2m:channels',
      'mapping:c2m:gen',
      'site:models',
    ];
    await expect(t.raw.fcall('site_load', 9, ...LOAD_KEYS, '{}', 5, 0)).rejects.toThrow('0 mapping pairs are staged, expected 5');
    await expect(t.raw.fcall('site_load', 9, ...LOAD_KEYS, '{}', 0, 0, 'pv1', 'no spaces')).rejects.toThrow('bad model id no spaces');
    await expect(t.raw.fcall('site_load', 9, ...LOAD_KEYS, '[1]', 0, 0)).rejects.toThrow('not a JSON object');
    expect(await dump()).toEqual(before);
    // The model ids given are the site's models, whatever the JSON holds.
    await t.raw.fcall('site_load', 9, ...LOAD_KEYS, '{"models":[{"id":"x"}]}', 0, 0, 'pv1', 'bess');
    expect((await t.raw.smembers('site:models')).sort()).toEqual(['bess', 'pv1']);
  });

  it('loads a large site (100k mapped points) in stages', async () => {
    const mapping = new Map<string, string>();
    for (let c = 0; c < 100; c++) for (let p = 1; p <= 1000; p++) mapping.set(`ch${c}:m:${p}`, `m${c}:p${p}`);
    await t.bus.site.load({ site: 'big', json: '{"site":"big"}', mapping, controls: new Map(), models: Array.from({ length: 100 }, (_, c) => `m${c}`) });
    expect(await t.raw.hlen('mapping:c2m')).toBe(100_000);
    expect(await t.raw.hget('mapping:c2m', 'ch99:m:1000')).toBe('m99:p1000');
    expect(await t.raw.exists('mapping:c2m:next')).toBe(0);
  });
});
