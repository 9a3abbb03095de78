/**
 * The read plan of a Modbus channel: its points grouped into the fewest
 * requests per device and function that respect the protocol's limits (125
 * registers for functions 3/4, 2000 bits for 1/2) and a maximum gap of unused
 * addresses inside one request. Computed once per config; pure.
 * A request that a device refuses with "illegal data address" is split into
 * one request per point (see `splitRequest`), so good points are never lost
 * to a hole in the device's map.
 */
import { registerCount, type DataType } from './codec.js';

export type ReadFunction = 1 | 2 | 3 | 4;

export interface PlanPoint {
  /** Index of the point in the channel's point list. */
  readonly index: number;
  readonly unit: number;
  readonly fn: ReadFunction;
  readonly address: number;
  readonly dataType: DataType;
}

export interface ReadRequest {
  readonly unit: number;
  readonly fn: ReadFunction;
  readonly address: number;
  /** Registers (fn 3/4) or bits (fn 1/2). */
  readonly count: number;
  /** Each point's offset into the request's reply. */
  readonly points: readonly { readonly index: number; readonly offset: number }[];
}

export const LIMITS: Readonly<Record<ReadFunction, number>> = { 1: 2000, 2: 2000, 3: 125, 4: 125 };

export function width(p: Pick<PlanPoint, 'fn' | 'dataType'>): number {
  return p.fn === 1 || p.fn === 2 ? 1 : registerCount(p.dataType);
}

export function planReads(points: readonly PlanPoint[], maxGap: number): ReadRequest[] {
  const groups = new Map<string, PlanPoint[]>();
  for (const p of points) {
    const k = `${p.unit}:${p.fn}`;
    let g = groups.get(k);
    if (!g) groups.set(k, (g = []));
    g.push(p);
  }
  const out: ReadRequest[] = [];
  for (const group of groups.values()) {
    const sorted = [...group].sort((a, b) => a.address - b.address || a.index - b.index);
    let start = -1;
    let end = -1; // exclusive
    let members: PlanPoint[] = [];
    const flush = () => {
      if (members.length === 0) return;
      const first = members[0]!;
      out.push({
        unit: first.unit,
        fn: first.fn,
        address: start,
        count: end - start,
        points: members.map((m) => ({ index: m.index, offset: m.address - start })),
      });
      members = [];
    };
    for (const p of sorted) {
      const pEnd = p.address + width(p);
      const limit = LIMITS[p.fn];
      if (members.length > 0 && p.address - end <= maxGap && Math.max(end, pEnd) - start <= limit) {
        end = Math.max(end, pEnd);
        members.push(p);
      } else {
        flush();
        start = p.address;
        end = pEnd;
        members = [p];
      }
    }
    flush();
  }
  return out.sort((a, b) => a.unit - b.unit || a.fn - b.fn || a.address - b.address);
}

/** One request per point of `r`, for a device that refused the coalesced read. */
export function splitRequest(r: ReadRequest, widthOf: (index: number) => number): ReadRequest[] {
  return r.points.map((p) => ({ unit: r.unit, fn: r.fn, address: r.address + p.offset, count: widthOf(p.index), points: [{ index: p.index, offset: 0 }] }));
}
