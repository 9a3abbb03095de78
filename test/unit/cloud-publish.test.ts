/**
 * What a cloud link publishes, its pure parts: raw channel points beside the
 * models, the on-change deadband (a fast-check law: the cloud's last value is
 * never further than the band from the point's value while its quality holds,
 * and the state written beside each XACK and read back after a restart
 * changes nothing of what is sent), and interval snapshots (the last value of
 * each interval, timed at its end).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LinkState, passesDeadband, type PointState } from '../../actors/cloud/linkState.js';
import {
  absorbSamples,
  buildMessages,
  channelMessages,
  entryMessages,
  messagePayload,
  snapshotMessages,
  type ModelMessage,
} from '../../actors/cloud/messages.js';
import { decodeEntry, type HistorySample } from '../../actors/history/outbox.js';
import { C2mBatch } from '../../runtime/domain/c2mBatch.js';
import { QUALITIES } from '../../runtime/domain/telemetry.js';
import type { Quality } from '../../runtime/domain/telemetry.js';

const mapping = new Map([['c1:m:1', { model: 'pv', name: 'P' }]]);
const base = { mapping, quality: true, timestamps: true } as const;
const sample = (value: number | null, quality: Quality = 'good', ts = 1000): HistorySample => ({
  series: { kind: 'point', channel: 'c1', type: 'm', point: 1 },
  ts,
  value,
  quality,
});

describe('channels', () => {
  it('a selected channel gets one message of its raw points (named type:id) after the models; unselected channels none', () => {
    const samples: HistorySample[] = [sample(2.5), { ...sample(7), series: { kind: 'point', channel: 'c1', type: 's', point: 4 } }];
    const msgs = buildMessages(samples, { ...base, channels: new Set(['c1']) });
    expect(msgs.map((m) => [m.of, m.model, m.channel])).toEqual([
      ['model', 'pv', 'c1'],
      ['channel', '', 'c1'],
    ]);
    expect(JSON.parse(messagePayload(9, msgs[1]!, true))).toEqual({ seq: 9, ts: 1000, channel: 'c1', values: { 'm:1': 2.5, 's:4': 7 } });
    expect(buildMessages(samples, { ...base, channels: new Set(['c2']) }).map((m) => m.of)).toEqual(['model']);
    // models: [] and a channel: the channel only.
    expect(buildMessages(samples, { ...base, models: new Set(), channels: new Set(['c1']) }).map((m) => m.of)).toEqual(['channel']);
  });

  it('include.quality false: no quality map and a quality mark alone is no message; include.timestamps false: no ts', () => {
    const opts = { ...base, quality: false, channels: new Set(['c1']) };
    expect(buildMessages([sample(null, 'comm-failure')], opts)).toEqual([]);
    const [m] = buildMessages([sample(1), { ...sample(null, 'bad'), series: { kind: 'point', channel: 'c1', type: 'm', point: 2 } }], {
      ...opts,
      models: new Set(),
    });
    expect(JSON.parse(messagePayload(1, m!, false))).toEqual({ seq: 1, channel: 'c1', values: { 'm:1': 1 } });
  });
});

describe('a channel entry read in place', () => {
  it('property: channelMessages makes what buildMessages makes of decodeEntry (models, raw points, quality, deadband state)', () => {
    const point = fc
      .record({
        type: fc.constantFrom('m' as const, 's' as const),
        id: fc.integer({ min: 1, max: 6 }),
        value: fc.option(fc.integer({ min: -20, max: 20 }).map((v) => v / 4)),
        quality: fc.option(fc.constantFrom(...QUALITIES)),
      })
      .filter((p) => p.value !== null || p.quality !== null);
    const mapped = fc.array(
      fc.tuple(fc.constantFrom('m', 's'), fc.integer({ min: 1, max: 6 }), fc.constantFrom('pv', 'bess', 'meter'), fc.constantFrom('P', 'Q', 'U')),
      {
        maxLength: 10,
      },
    );
    fc.assert(
      fc.property(
        mapped,
        fc.array(fc.array(point, { minLength: 1, maxLength: 12 }), { minLength: 1, maxLength: 4 }),
        fc.boolean(),
        fc.option(fc.constantFrom(['pv'], ['bess', 'meter'], [])),
        fc.boolean(),
        fc.option(fc.constantFrom(0, 1, 2.5)),
        (targets, entries, quality, models, raw, band) => {
          const mapping = new Map(targets.map(([t, id, model, name]) => [`c1:${t}:${id}`, { model, name }]));
          const opts = (state: LinkState) => ({
            mapping,
            quality,
            timestamps: true,
            models: models ? new Set(models) : undefined,
            channels: raw ? new Set(['c1']) : undefined,
            deadband: band === null ? undefined : { state, config: { default: band, models: {}, channels: {} } },
          });
          const [a, b] = [new LinkState(), new LinkState()];
          for (const points of entries) {
            const text = C2mBatch.of(points).bytes().toString('latin1');
            const viaSamples = buildMessages(decodeEntry(['src', 'c', 'id', 'c1', 'ts', '1000', 'p', text]), opts(a));
            expect(channelMessages('c1', 1000, text, opts(b))).toEqual(viaSamples);
            expect(b.takeChanges()).toEqual(a.takeChanges());
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('an entry with a bad line makes no message and moves no deadband reference', () => {
    const state = new LinkState();
    const opts = { ...base, channels: new Set(['c1']), deadband: { state, config: { default: 1, models: {}, channels: {} } } };
    expect(() => entryMessages(['src', 'c', 'id', 'c1', 'ts', '1000', 'p', 'm 1 5.000000 \nm 2 x \n'], { ...opts, alarms: true })).toThrow(
      'is not a finite number',
    );
    expect(state.takeChanges()).toEqual([]);
  });
});

/** Runs samples through the deadband as a link does: state changes written to `hash` after each entry (the XACK's MULTI). */
function runDeadband(samples: readonly PointState[], band: number, state: LinkState, hash: Record<string, string>): PointState[] {
  const published: PointState[] = [];
  for (const s of samples) {
    const msgs = buildMessages([sample(s.value, s.quality)], {
      ...base,
      channels: new Set(['c1']),
      deadband: { state, config: { default: band, models: { pv: { P: band } }, channels: {} } },
    });
    const ch = msgs.find((m) => m.of === 'channel');
    if (ch) published.push({ value: ch.values['m:1'] ?? null, quality: ch.quality?.['m:1'] ?? 'good' });
    // The model value and the raw point have the same band here: they go together.
    expect(msgs.length === 0 || msgs.length === 2).toBe(true);
    const changes = state.takeChanges();
    for (let i = 0; i < changes.length; i += 2) hash[changes[i]!] = changes[i + 1]!;
  }
  return published;
}

const pointState = fc.oneof(
  { weight: 4, arbitrary: fc.record({ value: fc.double({ min: -1e4, max: 1e4, noNaN: true }), quality: fc.constant<Quality>('good') }) },
  { weight: 1, arbitrary: fc.record({ value: fc.integer({ min: -20, max: 20 }).map((n) => n / 4), quality: fc.constantFrom<Quality>('good', 'stale') }) },
  { weight: 1, arbitrary: fc.record({ value: fc.constant(null), quality: fc.constantFrom<Quality>('bad', 'comm-failure') }) },
);

describe('deadband (publish: on-change)', () => {
  it('law: while the quality holds, the last value published is never further than the band; each value published moved more than the band', () => {
    fc.assert(
      fc.property(fc.array(pointState, { maxLength: 60 }), fc.double({ min: 0, max: 100, noNaN: true }), (samples, band) => {
        const published = runDeadband(samples, band, new LinkState(), {});
        // Which samples went: the filter is replayed with the law's own reference.
        let last: PointState | undefined;
        const sent: PointState[] = [];
        for (const s of samples) {
          if (passesDeadband(last, s, band)) sent.push((last = s));
          if (last!.quality === s.quality && last!.value !== null && s.value !== null) expect(Math.abs(s.value - last!.value)).toBeLessThanOrEqual(band);
        }
        expect(published).toEqual(sent);
        for (let i = 1; i < published.length; i++) expect(passesDeadband(published[i - 1], published[i]!, band)).toBe(true);
      }),
    );
  });

  it('law: the state written beside each XACK and read back by a restarted link sends exactly what one link would have sent', () => {
    fc.assert(
      fc.property(fc.array(pointState, { maxLength: 40 }), fc.nat(40), fc.double({ min: 0, max: 10, noNaN: true }), (samples, cut, band) => {
        const at = Math.min(cut, samples.length);
        const whole = runDeadband(samples, band, new LinkState(), {});
        const hash: Record<string, string> = {};
        const before = runDeadband(samples.slice(0, at), band, new LinkState(), hash);
        const restarted = new LinkState();
        restarted.load(hash);
        const after = runDeadband(samples.slice(at), band, restarted, {});
        expect([...before, ...after]).toEqual(whole);
      }),
    );
  });

  it('per point: a model value and a channel point with their own bands, the default for the rest, no band: always sent', () => {
    const state = new LinkState();
    const config = { models: { pv: { P: 10 } }, channels: {} };
    const send = (v: number) => buildMessages([sample(v)], { ...base, channels: new Set(['c1']), deadband: { state, config } }).map((m) => m.of);
    expect(send(100)).toEqual(['model', 'channel']);
    expect(send(105)).toEqual(['channel']); // P within 10 of 100; the raw point has no band
    expect(send(111)).toEqual(['model', 'channel']);
    expect(send(111)).toEqual(['channel']);
  });
});

const entry = (ts: number, v: number) => ['src', 'c', 'id', 'c1', 'ts', String(ts), 'p', `m 1 ${v} `];

describe('interval snapshots (publish: interval)', () => {
  it('an entry past the interval closes it: one snapshot per model and channel with the last value of the interval, timed at its end', () => {
    const state = new LinkState();
    const opts = { ...base, alarms: true, channels: new Set(['c1']), interval: { ms: 1_000, state } };
    const data = (fields: string[]) => entryMessages(fields, opts).map((u) => (u.kind === 'data' ? u.m : undefined)) as ModelMessage[];
    expect(data(entry(10_100, 1))).toEqual([]);
    expect(data(entry(10_500, 2))).toEqual([]);
    expect(data(entry(10_999, 3))).toEqual([]);
    const snap = data(entry(11_000, 4));
    expect(snap.map((m) => [m.of, m.ts, m.values])).toEqual([
      ['channel', 11_000, { 'm:1': 3 }],
      ['model', 11_000, { P: 3 }],
    ]);
    // Intervals with no entry are skipped (a backlog replayed); the next closes at the end of its own.
    expect(data(entry(14_200, 5)).map((m) => m.values)).toEqual([{ 'm:1': 4 }, { P: 4 }]);
    expect(state.bucketEnd).toBe(15_000);
  });

  it('a quality mark keeps the last value in the snapshot (with its quality when published, skipped when not)', () => {
    for (const quality of [true, false]) {
      const state = new LinkState();
      const opts = { ...base, quality, channels: new Set(['c1']) };
      absorbSamples([sample(5)], opts, state);
      absorbSamples([sample(null, 'comm-failure', 1_100)], opts, state);
      const snap = snapshotMessages(state, 2_000, quality);
      expect(snap.map((m) => [m.of, m.values, m.quality])).toEqual(
        quality
          ? [
              ['channel', { 'm:1': 5 }, { 'm:1': 'comm-failure' }],
              ['model', { P: 5 }, { P: 'comm-failure' }],
            ]
          : [
              ['channel', { 'm:1': 5 }, undefined],
              ['model', { P: 5 }, undefined],
            ],
      );
    }
  });

  it('law: every closed interval carries the last value whose time fell in it', () => {
    fc.assert(
      fc.property(fc.array(fc.nat(2_000), { minLength: 1, maxLength: 50 }), fc.integer({ min: 100, max: 1_000 }), (steps, ms) => {
        const state = new LinkState();
        const opts = { ...base, alarms: true, models: new Set<string>(), channels: new Set(['c1']), interval: { ms, state } };
        let ts = 1_000_000;
        const lastIn = new Map<number, number>();
        const snaps: Array<[number, number]> = [];
        steps.forEach((step, i) => {
          ts += step;
          for (const u of entryMessages(entry(ts, i), opts)) if (u.kind === 'data') snaps.push([u.m.ts, u.m.values['m:1']!]);
          lastIn.set((Math.floor(ts / ms) + 1) * ms, i);
        });
        for (const [end, v] of snaps) expect(v).toBe(lastIn.get(end));
        // Every interval closed by a later entry was sent.
        expect(snaps.length).toBe(lastIn.size - 1);
      }),
    );
  });
});
