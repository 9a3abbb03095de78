/**
 * An alarm actor's inputs: an update marks only the definitions that read its
 * points, and the scan that reads those points out of a notification agrees
 * with parsing the notification in full.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { AlarmInputs, exprRef } from '../../actors/alarm/alarmInputs.js';
import { NameSet } from '../../actors/alarm/scanUpdate.js';

const NAMES = ['p1', 'p2', 'p10', 'temp', 'soc', 'P', 'a_b', 'x-y'];

function inputsOf(): AlarmInputs<string> {
  return new AlarmInputs<string>('m1', [
    { reader: 'hi', refs: [{ source: 'm1', name: 'temp' }] },
    { reader: 'lo', refs: [{ source: 'm1', name: 'temp' }] },
    { reader: 'soc', refs: [{ source: 'm1', name: 'soc' }] },
    { reader: 'expr', refs: [exprRef('m1', 'P'), exprRef('m1', 'grid.f')] },
  ]);
}

describe('alarm inputs', () => {
  it('an update marks the readers of the points it carries, and no others', () => {
    const inputs = inputsOf();
    inputs.apply('m1', 5, { temp: 40, p1: 3 }, undefined);
    expect([...inputs.takeDirty()].sort()).toEqual(['hi', 'lo']);
    expect(inputs.takeDirty().size).toBe(0);
    inputs.apply('grid', 6, { f: 50.1, g: 1 }, undefined);
    expect([...inputs.takeDirty()]).toEqual(['expr']);
    expect(inputs.get('grid.f')).toEqual({ value: 50.1, quality: 'good', ts: 6 });
    // A quality without a value keeps the last value and its time.
    inputs.apply('m1', 9, {}, { soc: 'comm-failure' });
    expect(inputs.get('soc')).toEqual({ value: null, quality: 'comm-failure', ts: 9 });
    inputs.apply('m1', 10, { soc: 55 }, undefined);
    inputs.apply('m1', 11, {}, { soc: 'bad' });
    expect(inputs.get('soc')).toEqual({ value: 55, quality: 'bad', ts: 10 });
    expect(inputs.sources()).toEqual(['m1', 'grid']);
  });

  it('a load keeps only the points read and marks nothing', () => {
    const inputs = inputsOf();
    inputs.set('m1', 'temp', { value: 1, quality: 'good', ts: 1 });
    inputs.set('m1', 'other', { value: 1, quality: 'good', ts: 1 });
    expect(inputs.get('temp')?.value).toBe(1);
    expect(inputs.get('other')).toBeUndefined();
    expect(inputs.takeDirty().size).toBe(0);
  });

  const update = fc.record({
    ts: fc.integer({ min: 1, max: 2 ** 45 }),
    src: fc.constantFrom('c2m', 'calc'),
    v: fc.dictionary(fc.constantFrom(...NAMES), fc.oneof(fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }))),
    q: fc.option(fc.dictionary(fc.constantFrom(...NAMES), fc.constantFrom('bad', 'stale', 'comm-failure')), { nil: undefined }),
  });

  it('law: picking the points read from a notification agrees with parsing it in full, in any key order', () => {
    fc.assert(
      fc.property(update, fc.boolean(), (u, reversed) => {
        const entries = Object.entries(u).filter(([, x]) => x !== undefined);
        const message = JSON.stringify(Object.fromEntries(reversed ? entries.reverse() : entries));
        const inputs = new AlarmInputs<string>(
          'm1',
          ['p10', 'temp', 'x-y'].map((n) => ({ reader: n, refs: [{ source: 'm1', name: n }] })),
        );
        const picked = inputs.pick('m1', message);
        const full = JSON.parse(message) as typeof u;
        const only = <V>(o: Record<string, V> | undefined) => Object.fromEntries(Object.entries(o ?? {}).filter(([k]) => ['p10', 'temp', 'x-y'].includes(k)));
        expect(picked).toBeDefined();
        expect(picked!.ts).toBe(full.ts);
        expect(picked!.values).toEqual(only(full.v));
        expect(picked!.quality ?? {}).toEqual(only(full.q));
      }),
      { numRuns: 300 },
    );
  });

  it('law: applying a notification as published gives the samples and marks that applying it parsed in full gives', () => {
    const reads = ['p10', 'temp', 'x-y'].map((n) => ({ reader: n, refs: [{ source: 'm1', name: n }] }));
    fc.assert(
      fc.property(fc.array(fc.tuple(update, fc.boolean()), { minLength: 1, maxLength: 4 }), (updates) => {
        const scanned = new AlarmInputs<string>('m1', reads);
        const parsed = new AlarmInputs<string>('m1', reads);
        for (const [u, reversed] of updates) {
          const entries = Object.entries(u).filter(([, x]) => x !== undefined);
          const message = JSON.stringify(Object.fromEntries(reversed ? entries.reverse() : entries));
          expect(scanned.applyMessage('m1', message)).toBe(true);
          const full = JSON.parse(message) as typeof u;
          parsed.apply('m1', full.ts, full.v, full.q);
          for (const n of ['p10', 'temp', 'x-y']) expect(scanned.get(n)).toEqual(parsed.get(n));
          expect([...scanned.takeDirty()].sort()).toEqual([...parsed.takeDirty()].sort());
        }
      }),
      { numRuns: 300 },
    );
    const inputs = new AlarmInputs<string>('m1', reads);
    expect(inputs.applyMessage('m1', '{ "ts":1,"src":"c2m","v":{"temp":3}}')).toBe(false);
    expect(inputs.get('temp')).toBeUndefined();
  });

  it('a notification that is not plain (an escape, whitespace, a nested value, no ts) is left to the full parse', () => {
    const inputs = new AlarmInputs<string>('m1', [{ reader: 'a', refs: [{ source: 'm1', name: 'temp' }] }]);
    expect(inputs.pick('m1', '{"ts":1,"src":"c2m","v":{"te\\u006dp":3}}')).toBeUndefined();
    expect(inputs.pick('m1', '{ "ts":1,"src":"c2m","v":{"temp":3}}')).toBeUndefined();
    expect(inputs.pick('m1', '{"ts":1,"src":"c2m","v":{"temp":[3]}}')).toBeUndefined();
    expect(inputs.pick('m1', '{"src":"c2m","v":{"temp":3}}')).toBeUndefined();
    expect(inputs.pick('m1', '{"ts":1,"src":"other","v":{"temp":3}}')).toBeUndefined();
    expect(inputs.pick('m1', '{"ts":1,"src":"c2m","v":{"temp":true}}')).toBeUndefined();
    expect(inputs.pick('m1', 'not json')).toBeUndefined();
    expect(inputs.pick('m1', '{"ts":1,"src":"c2m","v":{"temp":3,"p":4},"q":{"temp":"bad"}}')).toEqual({
      ts: 1,
      values: { temp: 3 },
      quality: { temp: 'bad' },
    });
  });

  it('law: a name set finds a key of the text exactly when the key is one of its names', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.string({ maxLength: 6 }), { maxLength: 20 }),
        fc.string({ maxLength: 6 }),
        fc.string({ maxLength: 4 }),
        (names, key, around) => {
          const set = new NameSet(names);
          const text = `${around}${key}${around}`;
          expect(set.find(text, around.length, around.length + key.length)).toBe(names.includes(key) ? key : undefined);
        },
      ),
      { numRuns: 500 },
    );
    // A prefix or an extension of a name is not the name.
    const set = new NameSet(['p10', 'p100']);
    expect(set.find('"p1":1', 1, 3)).toBeUndefined();
    expect(set.find('"p1000":1', 1, 6)).toBeUndefined();
    expect(set.find('"p100":1', 1, 5)).toBe('p100');
  });
});
