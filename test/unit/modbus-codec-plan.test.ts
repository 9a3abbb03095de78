import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { BYTE_ORDERS, decodeRegisters, encodeRegisters, EncodeError, registerCount, type DataType } from '../../actors/modbus/codec.js';
import { LIMITS, planReads, splitRequest, width, type PlanPoint, type ReadFunction } from '../../actors/modbus/plan.js';

const ranges: Record<Exclude<DataType, 'float32' | 'float64' | 'bool'>, [number, number]> = {
  int16: [-32768, 32767],
  uint16: [0, 65535],
  int32: [-2147483648, 2147483647],
  uint32: [0, 4294967295],
};

describe('register codec', () => {
  it('property: decode(encode(v)) = v for every integer type and byte order', () => {
    for (const [type, [lo, hi]] of Object.entries(ranges)) {
      fc.assert(
        fc.property(fc.integer({ min: lo, max: hi }), fc.constantFrom(...BYTE_ORDERS), (v, order) => {
          const regs = encodeRegisters(v, type as DataType, order);
          expect(regs).toHaveLength(registerCount(type as DataType));
          for (const r of regs) expect(r >= 0 && r <= 0xffff).toBe(true);
          expect(decodeRegisters(regs, 0, type as DataType, order)).toBe(v);
        }),
      );
    }
  });

  it('property: round trip for float32 (to float32 precision) and float64 (exactly)', () => {
    fc.assert(
      fc.property(fc.float({ noNaN: true, noDefaultInfinity: true }), fc.constantFrom(...BYTE_ORDERS), (v, order) => {
        expect(decodeRegisters(encodeRegisters(v, 'float32', order), 0, 'float32', order)).toBe(Math.fround(v));
      }),
    );
    fc.assert(
      fc.property(fc.double({ noNaN: true, noDefaultInfinity: true }), fc.constantFrom(...BYTE_ORDERS), (v, order) => {
        expect(Object.is(decodeRegisters(encodeRegisters(v, 'float64', order), 0, 'float64', order), v)).toBe(true);
      }),
    );
  });

  it('lays bytes out as the byte order names them (0x11223344)', () => {
    expect(encodeRegisters(0x11223344, 'uint32', 'ABCD')).toEqual([0x1122, 0x3344]);
    expect(encodeRegisters(0x11223344, 'uint32', 'CDAB')).toEqual([0x3344, 0x1122]);
    expect(encodeRegisters(0x11223344, 'uint32', 'BADC')).toEqual([0x2211, 0x4433]);
    expect(encodeRegisters(0x11223344, 'uint32', 'DCBA')).toEqual([0x4433, 0x2211]);
    expect(decodeRegisters([0x4148, 0x0000], 0, 'float32', 'ABCD')).toBe(12.5);
    expect(decodeRegisters([0x0000, 0x4148], 0, 'float32', 'CDAB')).toBe(12.5);
    expect(decodeRegisters([0xff38], 0, 'int16', 'ABCD')).toBe(-200);
    expect(decodeRegisters([0x38ff], 0, 'int16', 'BADC')).toBe(-200);
  });

  it('reads one bit of a register', () => {
    expect([0, 1, 2, 3].map((b) => decodeRegisters([0b1010], 0, 'uint16', 'ABCD', b))).toEqual([0, 1, 0, 1]);
  });

  it('refuses to wrap or round what does not fit', () => {
    expect(() => encodeRegisters(70000, 'uint16', 'ABCD')).toThrow(EncodeError);
    expect(() => encodeRegisters(-1, 'uint32', 'ABCD')).toThrow('does not fit uint32');
    expect(() => encodeRegisters(1.5, 'int16', 'ABCD')).toThrow(EncodeError);
    expect(() => encodeRegisters(Number.NaN, 'float32', 'ABCD')).toThrow('not a finite number');
  });
});

const point = fc.record({
  unit: fc.integer({ min: 1, max: 3 }),
  fn: fc.constantFrom<ReadFunction>(1, 2, 3, 4),
  address: fc.integer({ min: 0, max: 3000 }),
  dataType: fc.constantFrom<DataType>('uint16', 'int32', 'float32', 'float64'),
});

describe('coalesced read plan', () => {
  it('property: every point covered once, inside its request, limits and gap respected, nothing mergeable left', () => {
    fc.assert(
      fc.property(fc.array(point, { maxLength: 300 }), fc.integer({ min: 0, max: 50 }), (raw, maxGap) => {
        const points: PlanPoint[] = raw.map((p, index) => ({ ...p, index }));
        const plan = planReads(points, maxGap);
        const seen = new Map<number, number>();
        for (const r of plan) {
          expect(r.count).toBeLessThanOrEqual(LIMITS[r.fn]);
          expect(r.count).toBeGreaterThan(0);
          for (const m of r.points) {
            seen.set(m.index, (seen.get(m.index) ?? 0) + 1);
            const p = points[m.index]!;
            expect(p.unit).toBe(r.unit);
            expect(p.fn).toBe(r.fn);
            expect(r.address + m.offset).toBe(p.address);
            expect(m.offset + width(p)).toBeLessThanOrEqual(r.count);
          }
        }
        expect(seen.size).toBe(points.length);
        for (const c of seen.values()) expect(c).toBe(1);
        // Greedy is minimal: two neighbouring requests of a device and function could not have been one.
        for (let i = 1; i < plan.length; i++) {
          const a = plan[i - 1]!;
          const b = plan[i]!;
          if (a.unit !== b.unit || a.fn !== b.fn) continue;
          const mergedCount = Math.max(a.address + a.count, b.address + b.count) - a.address;
          expect(b.address - (a.address + a.count) > maxGap || mergedCount > LIMITS[a.fn]).toBe(true);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('coalesces a typical meter map into few requests', () => {
    const pts: PlanPoint[] = [0, 2, 4, 6, 8, 100, 102].map((address, index) => ({ index, unit: 1, fn: 3, address, dataType: 'float32' }));
    const plan = planReads(pts, 10);
    expect(plan.map((r) => [r.address, r.count])).toEqual([
      [0, 10],
      [100, 4],
    ]);
    expect(splitRequest(plan[1]!, () => 2).map((r) => [r.address, r.count])).toEqual([
      [100, 2],
      [102, 2],
    ]);
  });
});
