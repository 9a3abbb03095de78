/**
 * The history outbox format: what c2m and model_set append comes out as the
 * samples they meant, every sample survives line protocol and back, and series
 * ids and Prometheus labels name the same series both ways.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { C2mBatch } from '../../runtime/domain/c2mBatch.js';
import { formatValue, QUALITIES } from '../../runtime/domain/telemetry.js';
import {
  decodeEntry,
  OutboxFormatError,
  parseLine,
  scanChannelText,
  parseSeriesId,
  promSelector,
  seriesId,
  seriesOfLabels,
  toLine,
  type HistorySample,
  type SeriesRef,
} from '../../actors/history/outbox.js';

const pointType = fc.constantFrom('m' as const, 's' as const, 'c' as const, 'a' as const);
const channelId = fc.stringMatching(/^[\w-]{1,12}$/);
/** Model names as a config could hold them, separators of line protocol and PromQL included. */
const name = fc.string({ minLength: 1, maxLength: 16 }).filter((s) => !/[\r\n]/.test(s));
const modelId = name.filter((s) => !s.includes('/'));

const seriesRef: fc.Arbitrary<SeriesRef> = fc.oneof(
  fc.record({ kind: fc.constant('point' as const), channel: channelId, type: pointType, point: fc.nat(1_000_000) }),
  fc.record({ kind: fc.constant('model' as const), model: modelId, name }),
  fc.record({ kind: fc.constant('alarm' as const), alarm: name }),
  fc.record({ kind: fc.constant('command' as const), model: modelId, name }),
);
const sample: fc.Arbitrary<HistorySample> = fc.record({
  series: seriesRef,
  ts: fc.integer({ min: 1, max: 4_102_444_800_000 }),
  value: fc.option(fc.double({ noNaN: true, noDefaultInfinity: true }).map((v) => (Object.is(v, -0) ? 0 : v))),
  quality: fc.constantFrom(...QUALITIES),
});

describe('history outbox: decoding entries', () => {
  it('property: a c2m entry gives one sample per point; no value = a quality mark, no quality = good', () => {
    const point = fc
      .record({
        type: pointType,
        id: fc.nat(100_000),
        value: fc.option(fc.double({ min: -1e9, max: 1e9, noNaN: true })),
        quality: fc.option(fc.constantFrom(...QUALITIES)),
      })
      .filter((p) => p.value !== null || p.quality !== null);
    fc.assert(
      fc.property(channelId, fc.integer({ min: 1, max: 2 ** 45 }), fc.array(point, { minLength: 1, maxLength: 50 }), (ch, ts, points) => {
        const text = C2mBatch.of(points).bytes().toString('latin1');
        const samples = decodeEntry(['src', 'c', 'id', ch, 'ts', String(ts), 'p', text]);
        expect(samples).toEqual(
          points.map((p) => ({
            series: { kind: 'point', channel: ch, type: p.type, point: p.id },
            ts,
            value: p.value === null ? null : Number(formatValue(p.value)),
            quality: p.quality ?? 'good',
          })),
        );
      }),
      { numRuns: 200 },
    );
  });

  it('property: the scan reads any points text as the line pattern does (same points, same errors), odd lines included', () => {
    // The pattern alone, as every line was read before the scan's plain way.
    const byPattern = (ch: string, text: string) => {
      const out: Array<[string, number, number | null, string]> = [];
      for (const line of text.split('\n')) {
        if (line === '') continue;
        const m = /^([msca]) (\d+) (\S*) (\S*)$/.exec(line);
        if (!m) throw new OutboxFormatError(`channel ${ch}: point line '${line.slice(0, 60)}' is not "type id value quality"`);
        const [, type, point, v, q] = m as unknown as [string, string, string, string, string];
        const where = `channel ${ch} ${type}:${point}`;
        if (v === '' && q === '') throw new OutboxFormatError(`${where}: neither a value nor a quality`);
        const n = Number(v);
        if (v !== '' && (v.trim() === '' || !Number.isFinite(n))) throw new OutboxFormatError(`${where}: value '${v}' is not a finite number`);
        if (q !== '' && !(QUALITIES as readonly string[]).includes(q)) throw new OutboxFormatError(`${where}: unknown quality '${q}'`);
        out.push([type, Number(point), v === '' ? null : n, q === '' ? 'good' : q]);
      }
      return out;
    };
    const piece = fc.constantFrom(
      'm',
      's',
      'c',
      'a',
      'x',
      ' ',
      '  ',
      '0',
      '07',
      '1',
      '42',
      '1234567890123456',
      '12.500000',
      '-3.5',
      '1e999',
      '-',
      '.',
      'e5',
      '+1',
      'good',
      'bad',
      'stale',
      'comm-failure',
      'fine',
      '\t',
      '\r',
      '\n',
      '\n\n',
    );
    // Values as formatValue writes them, and decimals of up to 18 digits (the scan reads up to 15 itself, Number() the rest), -0 and leading zeros included.
    const decimal = fc
      .tuple(fc.constantFrom('', '-'), fc.stringMatching(/^\d{1,10}$/), fc.option(fc.stringMatching(/^\d{0,8}$/)))
      .map(([sign, int, frac]) => `${sign}${int}${frac === null ? '' : `.${frac}`}`);
    const value = fc.oneof(fc.double({ min: -1e12, max: 1e12, noNaN: true }).map(formatValue), decimal);
    const plainLine = fc
      .tuple(pointType, fc.nat(100_000), fc.option(value), fc.option(fc.constantFrom(...QUALITIES)))
      .map(([t, id, v, q]) => `${t} ${id} ${v ?? ''} ${q ?? (v === null ? 'bad' : '')}\n`);
    const text = fc
      .array(
        fc.oneof(
          plainLine,
          fc.array(piece, { maxLength: 8 }).map((p) => p.join('')),
        ),
        { maxLength: 12 },
      )
      .map((l) => l.join(''));
    fc.assert(
      fc.property(channelId, text, (ch, t) => {
        let expected: unknown;
        try {
          expected = byPattern(ch, t);
        } catch (e) {
          expected = (e as Error).message;
        }
        const got: Array<[string, number, number | null, string]> = [];
        let result: unknown = got;
        try {
          scanChannelText(ch, t, (type, point, value, quality) => got.push([type, point, value, quality]));
        } catch (e) {
          expect(e).toBeInstanceOf(OutboxFormatError);
          result = (e as Error).message;
        }
        expect(result).toEqual(expected);
      }),
      { numRuns: 2000 },
    );
  });

  it('reads model_set entries as cjson writes them ([name, value-text, quality], empty value = a mark)', () => {
    const p = '[["P","12.500000","good"],["Q","","comm-failure"],["a\\/b","-1e+21","stale"]]';
    expect(decodeEntry(['src', 'm', 'id', 'pv1', 'ts', '1700000000123', 'p', p])).toEqual([
      { series: { kind: 'model', model: 'pv1', name: 'P' }, ts: 1700000000123, value: 12.5, quality: 'good' },
      { series: { kind: 'model', model: 'pv1', name: 'Q' }, ts: 1700000000123, value: null, quality: 'comm-failure' },
      { series: { kind: 'model', model: 'pv1', name: 'a/b' }, ts: 1700000000123, value: -1e21, quality: 'stale' },
    ]);
  });

  it('refuses entries that are not in the documented shape, with a typed error', () => {
    const bad: string[][] = [
      ['src', 'x', 'id', 'c1', 'ts', '1', 'p', 'm 1 1 good\n'],
      ['src', 'c', 'id', 'c1', 'ts', '0', 'p', 'm 1 1 good\n'],
      ['src', 'c', 'id', 'c1', 'ts', '5', 'p', 'm 1 abc good\n'],
      ['src', 'c', 'id', 'c1', 'ts', '5', 'p', 'm 1  \n'],
      ['src', 'c', 'id', 'c1', 'ts', '5', 'p', 'm 1 1 fine\n'],
      ['src', 'm', 'id', 'pv1', 'ts', '5', 'p', '[["P",1,"good"]]'],
      ['src', 'm', 'id', 'pv1', 'ts', '5', 'p', 'not json'],
      ['src', 'c', 'id', 'c1', 'ts', '5'],
    ];
    for (const fields of bad) expect(() => decodeEntry(fields), fields.join(' ')).toThrow(OutboxFormatError);
  });
});

describe('history outbox: line protocol', () => {
  it('writes the documented lines', () => {
    expect(toLine({ series: { kind: 'point', channel: '1001', type: 'm', point: 3 }, ts: 1700000000000, value: -12.5, quality: 'good' })).toBe(
      'voltage_point,channel=1001,type=m,point=3 value=-12.5,quality=0i 1700000000000',
    );
    expect(toLine({ series: { kind: 'model', model: 'pv 1', name: 'P,x=y' }, ts: 5, value: null, quality: 'comm-failure' })).toBe(
      'voltage_model,model=pv\\ 1,name=P\\,x\\=y quality=3i 5',
    );
  });

  it('property: every sample survives line protocol and back (encode ∘ decode = id)', () => {
    fc.assert(
      fc.property(sample, (s) => {
        expect(parseLine(toLine(s))).toEqual(s);
      }),
      { numRuns: 1_000 },
    );
  });

  it('refuses a name that line protocol cannot carry', () => {
    expect(() => toLine({ series: { kind: 'model', model: 'm', name: 'a\nb' }, ts: 1, value: 1, quality: 'good' })).toThrow(OutboxFormatError);
  });
});

describe('history outbox: alarm events', () => {
  it('an alarm transition (src a) is kept as 1 while the alarm is active and 0 when not', () => {
    const entry = (active: boolean) => [
      'src',
      'a',
      'id',
      'bess1.overtemp',
      'ts',
      '1700000000000',
      'p',
      JSON.stringify({ id: 'bess1.overtemp', event: 'ACK', from: 'unacknowledged', to: 'acknowledged', active }),
    ];
    expect(decodeEntry(entry(true))).toEqual([{ series: { kind: 'alarm', alarm: 'bess1.overtemp' }, ts: 1_700_000_000_000, value: 1, quality: 'good' }]);
    expect(decodeEntry(entry(false))[0]!.value).toBe(0);
    expect(toLine(decodeEntry(entry(true))[0]!)).toBe('voltage_alarm,alarm=bess1.overtemp value=1,quality=0i 1700000000000');
    expect(() => decodeEntry(['src', 'a', 'id', 'x', 'ts', '1', 'p', '{}'])).toThrow(OutboxFormatError);
  });
});

describe('history outbox: command results', () => {
  it('a command result (src k) is kept as the commanded value, with its status and read-back as fields', () => {
    const p = { model: 'bess1', name: 'Pset', value: '50', status: 'confirmed', readback: '49.5', source: 'op', message: '' };
    const entry = (q: object) => ['src', 'k', 'id', 'cmd-7', 'ts', '1700000000000', 'p', JSON.stringify({ ...p, ...q })];
    const [s] = decodeEntry(entry({}));
    expect(s).toEqual({
      series: { kind: 'command', model: 'bess1', name: 'Pset' },
      ts: 1_700_000_000_000,
      value: 50,
      quality: 'good',
      fields: { status: 0, readback: 49.5 },
    });
    expect(toLine(s!)).toBe('voltage_command,model=bess1,name=Pset value=50,quality=0i,status=0,readback=49.5 1700000000000');
    expect(parseLine(toLine(s!))).toEqual(s);
    expect(decodeEntry(entry({ status: 'timeout', readback: '' }))[0]!.fields).toEqual({ status: 2 });
    expect(() => decodeEntry(entry({ status: 'pending' }))).toThrow(OutboxFormatError);
    expect(() => decodeEntry(entry({ model: '' }))).toThrow(OutboxFormatError);
  });
});

describe('history outbox: series ids', () => {
  it('property: series id → ref → id is the identity, and a selector names the same labels', () => {
    fc.assert(
      fc.property(seriesRef, (r) => {
        expect(parseSeriesId(seriesId(r))).toEqual(r);
        const labels: Record<string, string> =
          r.kind === 'point'
            ? { __name__: 'voltage_point_value', channel: r.channel, type: r.type, point: String(r.point) }
            : r.kind === 'model'
              ? { __name__: 'voltage_model_value', model: r.model, name: r.name }
              : r.kind === 'alarm'
                ? { __name__: 'voltage_alarm_value', alarm: r.alarm }
                : { __name__: 'voltage_command_value', model: r.model, name: r.name };
        expect(seriesOfLabels(labels)).toEqual(r);
        expect(promSelector(r)).toMatch(/^voltage_(point|model|alarm|command)_value\{/);
      }),
      { numRuns: 500 },
    );
  });

  it('refuses ids that name nothing', () => {
    for (const id of ['', 'model/pv1', 'channel/1001/x/3', 'channel/10 01/m/3', 'pv1/P']) expect(() => parseSeriesId(id)).toThrow(OutboxFormatError);
  });
});
