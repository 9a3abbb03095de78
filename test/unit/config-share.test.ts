/**
 * The site's per-point tables are kept once: equal values shared, never a value changed
 * (runtime/config/share.ts, runtime/config/pointMapping.ts).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PointMapping } from '../../runtime/config/pointMapping.js';
import { flatString, ValueSharer } from '../../runtime/config/share.js';
import type { PointRef } from '../../runtime/config/site.js';

describe('shared config values', () => {
  it('equal points of two channels are one object, with the same keys in the same order', () => {
    const s = new ValueSharer();
    const point = (ch: number) => ({ type: 'm', id: 1, name: ['p', String(ch - ch + 1)].join(''), unit: undefined, sim: { kind: 'sine', phase: 0.5 } });
    const a = s.share(point(1));
    const b = s.share(point(2));
    expect(b).toBe(a);
    expect(Object.keys(a)).toEqual(['type', 'id', 'name', 'unit', 'sim']);
    expect(s.share({ kind: 'sine', phase: 0.5 })).toBe(a.sim);
  });

  it('values that differ are not shared: a field, -0 and 0, a key set to undefined and a key absent', () => {
    const s = new ValueSharer();
    expect(s.share({ a: 1 })).not.toBe(s.share({ a: 2 }));
    expect(s.share({ a: 0 })).not.toBe(s.share({ a: -0 }));
    expect(Object.is(s.share({ a: -0 }).a, -0)).toBe(true);
    expect(s.share({ a: 1, b: undefined })).not.toBe(s.share({ a: 1 }));
    expect(s.share({ a: '\u0000-0' })).not.toBe(s.share({ a: -0 }));
    expect(s.share({ a: 1, b: 2 })).not.toBe(s.share({ b: 2, a: 1 }));
  });

  it('property: a shared value equals the value given, and anything but plain data is kept as it is', () => {
    const plain = fc.dictionary(
      fc.string({ maxLength: 4 }),
      fc.oneof(fc.double(), fc.integer(), fc.string({ maxLength: 3 }), fc.boolean(), fc.constant(null), fc.constant(undefined)),
      { maxKeys: 5 },
    );
    fc.assert(
      fc.property(fc.array(plain, { maxLength: 20 }), (values) => {
        const s = new ValueSharer();
        for (const v of values) {
          const shared = s.share(v);
          expect(Object.keys(shared)).toEqual(Object.keys(v));
          for (const k of Object.keys(v)) expect(Object.is(shared[k], v[k])).toBe(true);
        }
      }),
    );
    const s = new ValueSharer();
    const list = [1, 2];
    const fn = () => 1;
    const withArray = s.share({ list, fn });
    expect(withArray.list).toBe(list);
    expect(withArray.fn).toBe(fn);
    expect(s.share({ list: [1, 2], fn })).not.toBe(withArray);
  });

  it('property: two values are one shared object exactly when they are equal (keys in order, Object.is on leaves, nested alike)', () => {
    const leaf = fc.oneof(
      fc.constantFrom(0, -0, 1, Number.NaN, Number.POSITIVE_INFINITY),
      fc.constantFrom('', 'a', '"', 'n1;'),
      fc.boolean(),
      fc.constant(null),
      fc.constant(undefined),
    );
    const keys = fc.constantFrom('a', 'b', '"c"', '');
    const { tree } = fc.letrec((tie) => ({
      tree: fc.dictionary(keys, fc.oneof({ depthSize: 'small' }, leaf, tie('tree')), { maxKeys: 3, noNullPrototype: true }),
    }));
    const equal = (x: unknown, y: unknown): boolean => {
      if (typeof x !== 'object' || x === null || typeof y !== 'object' || y === null) return Object.is(x, y);
      const kx = Object.keys(x);
      const ky = Object.keys(y);
      return kx.length === ky.length && kx.every((k, i) => k === ky[i] && equal((x as Record<string, unknown>)[k], (y as Record<string, unknown>)[k]));
    };
    fc.assert(
      fc.property(tree, tree, (a, b) => {
        const s = new ValueSharer();
        const sa = s.share(a);
        const sb = s.share(b);
        expect(equal(sa, a)).toBe(true);
        expect(equal(sb, b)).toBe(true);
        expect(sa === sb).toBe(equal(a, b));
      }),
      { numRuns: 500 },
    );
  });

  it('equal maps of names are one map; a map that differs in a name, a value or the order is its own', () => {
    const s = new ValueSharer();
    const unit = (u: string | undefined) => s.share({ unit: u });
    const a = s.shareMap(
      new Map([
        ['P', unit('kW')],
        ['Q', unit(undefined)],
      ]),
    );
    expect(
      s.shareMap(
        new Map([
          ['P', unit('kW')],
          ['Q', unit(undefined)],
        ]),
      ),
    ).toBe(a);
    expect(
      s.shareMap(
        new Map([
          ['P', unit('kW')],
          ['Q', unit('kvar')],
        ]),
      ),
    ).not.toBe(a);
    expect(
      s.shareMap(
        new Map([
          ['Q', unit(undefined)],
          ['P', unit('kW')],
        ]),
      ),
    ).not.toBe(a);
    expect(s.shareMap(new Map([['P', unit('kW')]]))).not.toBe(a);
    const withArray = new Map([['P', { tiers: [1] }]]);
    expect(s.shareMap(withArray)).toBe(withArray);
    expect(s.shareMap(new Map([['P', { tiers: [1] }]]))).not.toBe(withArray);
  });

  it('a concatenated string comes out equal', () => {
    expect(flatString(`${'m'.repeat(20)}.${'a1'}`)).toBe(`${'m'.repeat(20)}.a1`);
  });
});

describe('a model mapping kept as arrays', () => {
  it('answers as the Map it replaces: order of first set, equal refs, an update in place', () => {
    const m = new PointMapping();
    const ref = new Map<string, PointRef>([
      ['P', { channel: 'c1', type: 'm', point: 1 }],
      ['Q', { channel: 'c1', type: 'm', point: 2 }],
    ]);
    for (const [k, v] of ref) m.set(k, v);
    m.set('R', { channel: 'c2', type: 's', point: 7 });
    ref.set('R', { channel: 'c2', type: 's', point: 7 });
    m.set('P', { channel: 'c3', type: 'm', point: 9 });
    ref.set('P', { channel: 'c3', type: 'm', point: 9 });
    expect([...m]).toEqual([...ref]);
    expect([...m.keys()]).toEqual([...ref.keys()]);
    expect([...m.values()]).toEqual([...ref.values()]);
    expect(m.size).toBe(3);
    expect(m.get('Q')).toEqual({ channel: 'c1', type: 'm', point: 2 });
    expect(m.get('X')).toBeUndefined();
    expect(m.has('R')).toBe(true);
    const seen: string[] = [];
    m.forEach((r, name) => {
      seen.push(`${name}=${r.channel}:${r.type}:${r.point}`);
    });
    expect(seen).toEqual(['P=c3:m:9', 'Q=c1:m:2', 'R=c2:s:7']);
  });
});
