/** The text a channel hands to c2m: what goes in comes out, line by line, however many points. */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { C2mBatch, parseChannelUpdate, parsePoints } from '../../runtime/domain/c2mBatch.js';
import { formatValue, QUALITIES } from '../../runtime/domain/telemetry.js';

const point = fc.record({
  type: fc.constantFrom('m' as const, 's' as const, 'c' as const, 'a' as const),
  id: fc.nat(1_000_000),
  value: fc.option(fc.double({ min: -1e12, max: 1e12, noNaN: true })),
  quality: fc.option(fc.constantFrom(...QUALITIES)),
});

describe('C2mBatch', () => {
  it('a channel notification is the time, a newline and the text: parsed back to the same points', () => {
    const b = C2mBatch.of([
      { type: 'm', id: 7, value: -12.5, quality: 'good' },
      { type: 's', id: 2, value: null, quality: 'comm-failure' },
      { type: 'a', id: 3, value: 0.1, quality: null },
    ]);
    expect(parseChannelUpdate(`1700000000000\n${b.bytes().toString()}`)).toEqual({
      ts: 1_700_000_000_000,
      points: [
        { type: 'm', id: 7, value: -12.5, quality: 'good' },
        { type: 's', id: 2, value: null, quality: 'comm-failure' },
        { type: 'a', id: 3, value: 0.1, quality: null },
      ],
    });
    expect(parsePoints('garbage\nm 1 2.000000 \n')).toEqual([{ type: 'm', id: 1, value: 2, quality: null }]);
  });

  it('property: every point comes back with its value at 6 decimals, also when the buffer grows, and after clear', () => {
    fc.assert(
      fc.property(fc.array(point, { minLength: 1, maxLength: 400 }), (points) => {
        const batch = new C2mBatch();
        batch.add('m', 1, 1, 'good');
        batch.clear();
        for (const p of points) batch.add(p.type, p.id, p.value, p.quality);
        expect(batch.count).toBe(points.length);
        const text = batch.bytes().toString('latin1');
        expect(text.endsWith('\n')).toBe(true); // every point ends with a newline
        expect(text.split('\n')).toHaveLength(points.length + 1);
        const back = parsePoints(text);
        expect(back).toEqual(points.map((p) => ({ ...p, value: p.value === null ? null : Number(formatValue(p.value)) })));
      }),
      { numRuns: 200 },
    );
  });

  it('writes the exact text c2m expects', () => {
    const b = C2mBatch.of([
      { type: 'm', id: 7, value: -12.5, quality: 'good' },
      { type: 's', id: 2, value: null, quality: 'comm-failure' },
      { type: 'a', id: 3, value: 0.1, quality: null },
    ]);
    expect(b.bytes().toString()).toBe('m 7 -12.500000 good\ns 2  comm-failure\na 3 0.100000 \n');
  });
});
