/**
 * The writer's fast way from a channel entry to line protocol (lines.ts) makes
 * the same samples as the reference way (decodeEntry, the c2m mapping, toLine):
 * for entries as c2m writes them and for lines that are not plain or not in
 * the outbox format at all, which it must refuse the same way.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { C2mBatch } from '../../runtime/domain/c2mBatch.js';
import { QUALITIES } from '../../runtime/domain/telemetry.js';
import { KeyTable, LineBuffer, LineEncoder } from '../../actors/history/lines.js';
import { decodeEntry, OutboxFormatError, parseLine, seriesId, toLine, type HistorySample } from '../../actors/history/outbox.js';

const pointType = fc.constantFrom('m' as const, 's' as const, 'c' as const, 'a' as const);
const mapping = new Map([
  ['c1:m:1', { model: 'pv 1', name: 'P,x=y' }],
  ['c1:s:2', { model: 'bess', name: 'soc' }],
  ['c1:m:7', { model: 'site', name: 'load' }],
]);

/** decodeEntry, the mapping and toLine, as the writer did it a sample at a time. */
function reference(channel: string, ts: number, text: string, opts: { channels: boolean; models: boolean }): HistorySample[] {
  const out: HistorySample[] = [];
  for (const s of decodeEntry(['src', 'c', 'id', channel, 'ts', String(ts), 'p', text])) {
    if (s.series.kind !== 'point') throw new Error('not a point');
    if (opts.channels) out.push(s);
    const t = opts.models ? mapping.get(`${channel}:${s.series.type}:${s.series.point}`) : undefined;
    if (t) out.push({ ...s, series: { kind: 'model', model: t.model, name: t.name } });
  }
  return out.map((s) => parseLine(toLine(s)));
}

function encoded(enc: LineEncoder, channel: string, ts: number, text: string): { lines: HistorySample[]; policy: readonly HistorySample[] } {
  const out = new LineBuffer(16); // small: it grows
  out.line('before');
  const policy = enc.channelEntry(channel, ts, text, out);
  const lines = out.bytes().toString('utf8').split('\n');
  expect(lines.shift()).toBe('before');
  expect(lines.pop()).toBe('');
  expect(lines.length).toBe(out.lines - 1);
  return { lines: lines.map(parseLine), policy };
}

function textOf(enc: LineEncoder, channel: string, ts: number, text: string): string {
  const out = new LineBuffer();
  enc.channelEntry(channel, ts, text, out);
  return out.bytes().toString('utf8');
}

/** A point line: mostly as c2m writes it, sometimes odd (leading zeros, exponents, signs, bad qualities, stray spaces). */
/** Plain decimals of hundreds of digits: 400 nines are Infinity (refused), 1 and 307 zeros is finite (a plain decimal, 1e307). */
const oddValue = fc.constantFrom(
  '1e5',
  '+3',
  '007.5',
  '.5',
  '5.',
  '-0',
  '0x10',
  'abc',
  'Infinity',
  '1.5.2',
  '',
  '-',
  ' 1',
  '9'.repeat(400),
  `1${'0'.repeat(307)}`,
);
const pointLine = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      type: pointType,
      id: fc.nat(20),
      value: fc.option(fc.double({ min: -1e9, max: 1e9, noNaN: true })),
      quality: fc.option(fc.constantFrom(...QUALITIES)),
    }),
  },
  {
    weight: 1,
    arbitrary: fc
      .tuple(
        fc.constantFrom('m', 's', 'x', ''),
        fc.constantFrom('1', '07', '2', '', 'a'),
        oddValue,
        fc.constantFrom('', 'good', 'stale', 'fine', 'constructor'),
      )
      .map(([t, id, v, q]) => `${t} ${id} ${v} ${q}\n`),
  },
);

function text(
  lines: ReadonlyArray<string | { type: 'm' | 's' | 'c' | 'a'; id: number; value: number | null; quality: (typeof QUALITIES)[number] | null }>,
): string {
  return lines
    .map((l) => {
      if (typeof l === 'string') return l;
      if (l.value === null && l.quality === null) return '';
      return C2mBatch.of([l]).bytes().toString('latin1');
    })
    .join('');
}

describe('history lines: a channel entry straight to line protocol', () => {
  it('property: the same samples as decodeEntry + mapping + toLine, and the same refusals', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('c1', 'c2'),
        fc.integer({ min: 1, max: 2 ** 45 }),
        fc.array(pointLine, { minLength: 0, maxLength: 30 }),
        fc.boolean(),
        fc.boolean(),
        (channel, ts, lines, channels, models) => {
          const enc = new LineEncoder({ channels, models });
          enc.setMapping(mapping);
          const t = text(lines);
          let want: HistorySample[] | OutboxFormatError;
          try {
            want = reference(channel, ts, t, { channels, models });
          } catch (e) {
            if (!(e instanceof OutboxFormatError)) throw e;
            want = e;
          }
          if (want instanceof OutboxFormatError) {
            // Refused, and nothing of the entry is left in the body.
            const out = new LineBuffer();
            expect(() => enc.channelEntry(channel, ts, t, out)).toThrow(OutboxFormatError);
            expect(out.length).toBe(0);
            expect(out.lines).toBe(0);
          } else {
            // Twice: the second time from the cached heads.
            expect(encoded(enc, channel, ts, t).lines).toEqual(want);
            expect(encoded(enc, channel, ts, t).lines).toEqual(want);
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  it('series with a keep policy come back as samples, the others as lines', () => {
    const enc = new LineEncoder({ channels: true, models: true, policies: ['channel/c1/m/1', 'model/site/load'] });
    enc.setMapping(mapping);
    const { lines, policy: samples } = encoded(enc, 'c1', 1000, 'm 1 1.500000 good\nm 7 2.000000 \ns 9 3.000000 bad\n');
    expect(samples.map((s) => [seriesId(s.series), s.value, s.quality])).toEqual([
      ['channel/c1/m/1', 1.5, 'good'],
      ['model/site/load', 2, 'good'],
    ]);
    expect(lines.map((s) => [seriesId(s.series), s.value, s.quality])).toEqual([
      ['model/pv 1/P,x=y', 1.5, 'good'],
      ['channel/c1/m/7', 2, 'good'],
      ['channel/c1/s/9', 3, 'bad'],
    ]);
  });

  it('a new mapping is used at once (the cached heads are dropped)', () => {
    const enc = new LineEncoder({ channels: false, models: true });
    enc.setMapping(mapping);
    expect(textOf(enc, 'c1', 5, 'm 1 1.000000 good\n')).toBe('voltage_model,model=pv\\ 1,name=P\\,x\\=y value=1.000000,quality=0i 5\n');
    enc.setMapping(new Map([['c1:m:1', { model: 'm2', name: 'x' }]]));
    expect(textOf(enc, 'c1', 5, 'm 1 1.000000 good\n')).toBe('voltage_model,model=m2,name=x value=1.000000,quality=0i 5\n');
  });

  it('qualityEveryMs: the quality beside a value where it changed, on the first value, every qualityEveryMs and after resetQuality; a mark always', () => {
    const enc = new LineEncoder({ channels: true, models: true, qualityEveryMs: 1_000 });
    enc.setMapping(new Map([['c1:m:1', { model: 'm', name: 'x' }]]));
    const steps: Array<[number, string]> = [
      [1_000, 'm 1 1.5 \n'],
      [1_100, 'm 1 1.6 \n'],
      [1_200, 'm 1  bad\n'],
      [1_300, 'm 1 1.7 \n'],
      [1_400, 'm 1 1.8 \n'],
      [2_299, 'm 1 1.9 \n'],
      [2_300, 'm 1 2.0 \n'],
      [2_200, 'm 1 2.1 \n'],
    ];
    const got = steps.map(([ts, t]) => textOf(enc, 'c1', ts, t));
    const pair = (a: string, b: string) => `voltage_point,channel=c1,type=m,point=1 ${a}\nvoltage_model,model=m,name=x ${b}\n`;
    expect(got).toEqual([
      pair('value=1.5,quality=0i 1000', 'value=1.5,quality=0i 1000'),
      pair('value=1.6 1100', 'value=1.6 1100'),
      pair('quality=2i 1200', 'quality=2i 1200'),
      pair('value=1.7,quality=0i 1300', 'value=1.7,quality=0i 1300'),
      pair('value=1.8 1400', 'value=1.8 1400'),
      pair('value=1.9 2299', 'value=1.9 2299'),
      pair('value=2.0,quality=0i 2300', 'value=2.0,quality=0i 2300'), // 1,000 ms after the last one written
      pair('value=2.1,quality=0i 2200', 'value=2.1,quality=0i 2200'), // older than the last one written (a repeat)
    ]);
    enc.resetQuality();
    expect(textOf(enc, 'c1', 2_400, 'm 1 2.2 \n')).toBe(pair('value=2.2,quality=0i 2400', 'value=2.2,quality=0i 2400'));
    // A line that is not plain takes the sample way (always with its quality); the next plain one carries it again.
    expect(textOf(enc, 'c1', 2_500, 'm 1 1e1 stale\n')).toBe(pair('value=10,quality=1i 2500', 'value=10,quality=1i 2500'));
    expect(textOf(enc, 'c1', 2_600, 'm 1 2.3 \n')).toBe(pair('value=2.3,quality=0i 2600', 'value=2.3,quality=0i 2600'));
  });

  it("property: with qualityEveryMs, each value's quality is the newest quality written at or before it within qualityEveryMs (last_over_time)", () => {
    const every = 1_000;
    const reading = fc.oneof(
      fc.record({ value: fc.integer({ min: -9, max: 9 }), quality: fc.constantFrom('', 'good', 'stale', 'bad') }),
      fc.record({ value: fc.constant(null), quality: fc.constantFrom('stale', 'bad', 'comm-failure') }),
    );
    const step = fc.record({ dt: fc.integer({ min: 1, max: 1_500 }), reading, reset: fc.boolean() });
    fc.assert(
      fc.property(fc.array(step, { minLength: 1, maxLength: 60 }), (steps) => {
        const enc = new LineEncoder({ channels: true, models: false, qualityEveryMs: every });
        const written: Array<{ ts: number; quality: string | undefined }> = [];
        let ts = 1_000;
        for (const s of steps) {
          ts += s.dt;
          if (s.reset) enc.resetQuality();
          const text = `m 1 ${s.reading.value === null ? '' : `${s.reading.value}.000000`} ${s.reading.quality}\n`;
          const line = textOf(enc, 'c1', ts, text);
          const q = /quality=(\d)i/.exec(line)?.[1];
          written.push({ ts, quality: q === undefined ? undefined : QUALITIES[Number(q)] });
          if (s.reading.value === null) continue;
          const lastQ = [...written].reverse().find((w) => w.quality !== undefined && w.ts > ts - every);
          expect(lastQ?.quality).toBe(s.reading.quality === '' ? 'good' : s.reading.quality);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('KeyTable: numbers by point key, 0 for none, in an array up to 65,535 and a Map beyond; clear forgets all', () => {
    const t = new KeyTable();
    const keys = [0, 3, 15, 16, 1_000, 65_535, 65_536, 262_143];
    for (const [i, k] of keys.entries()) t.set(k, (i + 1) * 1.5e12);
    expect(keys.map((k) => t.get(k))).toEqual(keys.map((_, i) => (i + 1) * 1.5e12));
    expect([1, 17, 65_537].map((k) => t.get(k))).toEqual([0, 0, 0]);
    t.set(65_536, 0);
    t.set(16, 0);
    expect([t.get(65_536), t.get(16), t.get(15)]).toEqual([0, 0, 4.5e12]);
    t.clear();
    expect(keys.map((k) => t.get(k))).toEqual(keys.map(() => 0));
  });

  it('refuses a bad channel id and a model name with a line break, like decodeEntry and toLine', () => {
    const enc = new LineEncoder({ channels: true, models: true });
    expect(() => enc.channelEntry('c 1', 5, 'm 1 1 good\n', new LineBuffer())).toThrow(OutboxFormatError);
    enc.setMapping(new Map([['c1:m:1', { model: 'm', name: 'a\nb' }]]));
    expect(() => enc.channelEntry('c1', 5, 'm 1 1 good\n', new LineBuffer())).toThrow(OutboxFormatError);
  });
});
