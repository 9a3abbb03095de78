/**
 * A model's measurement mapping (value name → the channel point that feeds it),
 * kept as parallel arrays instead of a PointRef object per value: the site is
 * held for the runtime's whole life, and on a 100k-point site those were
 * 100,000 objects for every mark-compact to walk, read by nothing after start
 * but the site's description. A PointRef is made when asked for (equal to the
 * one set, not the same object). Iteration is in the order names were first set.
 */
import type { PointRef } from './site.js';

export class PointMapping implements ReadonlyMap<string, PointRef> {
  private readonly index = new Map<string, number>();
  private readonly channels: string[] = [];
  private readonly types: PointRef['type'][] = [];
  private readonly points: number[] = [];

  /** While the site is resolved only. */
  set(name: string, ref: PointRef): this {
    const i = this.index.get(name) ?? this.channels.length;
    this.index.set(name, i);
    this.channels[i] = ref.channel;
    this.types[i] = ref.type;
    this.points[i] = ref.point;
    return this;
  }

  get size(): number {
    return this.index.size;
  }

  has(name: string): boolean {
    return this.index.has(name);
  }

  get(name: string): PointRef | undefined {
    const i = this.index.get(name);
    return i === undefined ? undefined : this.at(i);
  }

  forEach(fn: (ref: PointRef, name: string, map: ReadonlyMap<string, PointRef>) => void, thisArg?: unknown): void {
    for (const [name, i] of this.index) fn.call(thisArg, this.at(i), name, this);
  }

  keys(): MapIterator<string> {
    return this.index.keys();
  }

  values(): MapIterator<PointRef> {
    return this.asMap().values();
  }

  entries(): MapIterator<[string, PointRef]> {
    return this.asMap().entries();
  }

  [Symbol.iterator](): MapIterator<[string, PointRef]> {
    return this.entries();
  }

  private at(i: number): PointRef {
    return { channel: this.channels[i]!, type: this.types[i]!, point: this.points[i]! };
  }

  /** A plain Map of the refs, made for one iteration (at start, not per poll). */
  private asMap(): Map<string, PointRef> {
    const out = new Map<string, PointRef>();
    for (const [name, i] of this.index) out.set(name, this.at(i));
    return out;
  }
}
