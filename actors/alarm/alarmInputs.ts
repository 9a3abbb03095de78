/**
 * The inputs of one model's alarms: the samples their definitions read, and
 * which definitions read each, so that an update marks only the definitions
 * whose points it carries (an update of 1,000 values that changes 3 of the 100
 * alarmed points re-evaluates those 3 definitions, not 100).
 *
 * Samples are kept by scope key: `name` for a point of the actor's own model,
 * `model.name` for a point of another model (expressions and suppression
 * conditions may read other models). A sample is updated in place: a poll of 100 alarmed points
 * allocates nothing here. Never reads a clock and never touches Redis.
 */
import type { PointQuality, Sample } from '../../machines/alarmCondition.js';
import { NameSet, scanUpdate, type ScannedUpdate, type ScanTarget } from './scanUpdate.js';

/** The part of a model update that the alarms read. */
export interface PickedUpdate {
  readonly ts: number;
  readonly values: Record<string, number>;
  readonly quality: Record<string, string> | undefined;
}

interface MutableSample {
  value: number | null;
  quality: PointQuality;
  ts: number;
}

/** One point read by some definitions: its name in its model's updates, its scope key, its readers. */
interface Input<T> {
  readonly name: string;
  readonly key: string;
  readonly readers: T[];
}

/** A point read by a definition: its model, and its name there. */
export interface PointRef {
  readonly source: string;
  readonly name: string;
}

/** An expression's ref (`name` of the alarm's model, `model.name` of another) as a point. */
export function exprRef(model: string, ref: string): PointRef {
  const dot = ref.indexOf('.');
  return dot < 0 ? { source: model, name: ref } : { source: ref.slice(0, dot), name: ref.slice(dot + 1) };
}

export class AlarmInputs<T> {
  private readonly model: string;
  private readonly samples = new Map<string, MutableSample>();
  /** Per source model: the points of it that are read. */
  private readonly bySource = new Map<string, Input<T>[]>();
  private readonly read = new Set<string>();
  /** Per source model: its points that are read, by name. */
  private readonly byName = new Map<string, Map<string, Input<T>>>();
  /** Per source model: the scan's target (the names read, where the pairs found go). */
  private readonly targets = new Map<string, ScanTarget>();
  /** What the last scan found, in arrays reused from one notification to the next. */
  private readonly scanned = { names: [] as string[], values: [] as number[], qualityNames: [] as string[], qualities: [] as string[] };
  /** The readers whose inputs changed since `takeDirty` last ran. */
  private dirty = new Set<T>();

  /** `reads`: each reader with the points it reads. */
  constructor(model: string, reads: Iterable<{ readonly reader: T; readonly refs: Iterable<PointRef> }>) {
    this.model = model;
    const byKey = new Map<string, Input<T>>();
    for (const { reader, refs } of reads) {
      for (const { source, name } of refs) {
        const key = this.key(source, name);
        let input = byKey.get(key);
        if (!input) {
          input = { name, key, readers: [] };
          byKey.set(key, input);
          this.read.add(key);
          const list = this.bySource.get(source) ?? [];
          list.push(input);
          this.bySource.set(source, list);
          const named = this.byName.get(source) ?? new Map<string, Input<T>>();
          named.set(name, input);
          this.byName.set(source, named);
        }
        if (!input.readers.includes(reader)) input.readers.push(reader);
      }
    }
  }

  /**
   * Scans a model update as published for the points read into the reused `scanned`
   * arrays (names and values, names and qualities, in the message's order); the
   * update's head, or undefined when the message is not of the plain shape that a
   * scan reads (the caller parses it in full then).
   */
  private scan(source: string, message: string): ScannedUpdate | undefined {
    const inputs = this.bySource.get(source);
    if (!inputs) return undefined;
    let target = this.targets.get(source);
    if (!target) {
      const found = this.scanned;
      target = {
        names: new NameSet(inputs.map((i) => i.name)),
        onValue: (name, v) => {
          found.names.push(name);
          found.values.push(v);
        },
        onQuality: (name, q) => {
          found.qualityNames.push(name);
          found.qualities.push(q);
        },
      };
      this.targets.set(source, target);
    }
    const found = this.scanned;
    found.names.length = found.values.length = found.qualityNames.length = found.qualities.length = 0;
    return scanUpdate(message, target);
  }

  /** The values and qualities of the points read, out of a model update as published; undefined when it is not plain. */
  pick(source: string, message: string): PickedUpdate | undefined {
    const head = this.scan(source, message);
    if (!head) return undefined;
    const { names, values, qualityNames, qualities } = this.scanned;
    const v: Record<string, number> = {};
    for (let i = 0; i < names.length; i++) v[names[i]!] = values[i]!;
    let quality: Record<string, string> | undefined;
    for (let i = 0; i < qualityNames.length; i++) (quality ??= {})[qualityNames[i]!] = qualities[i]!;
    return { ts: head.ts, values: v, quality };
  }

  /**
   * A model update as published, applied as `apply` would apply it parsed, without
   * building its values: false when it is not plain (nothing applied; the caller
   * parses it in full and calls `apply`). A notification of 1,000 values with 100
   * points read allocates 100 numbers here, not an object of 100 entries.
   */
  applyMessage(source: string, message: string): boolean {
    const head = this.scan(source, message);
    if (!head) return false;
    const byName = this.byName.get(source)!;
    const { names, values, qualityNames, qualities } = this.scanned;
    // Values first (quality good), then the qualities: what `apply` gives a value with or without its quality.
    for (let i = 0; i < names.length; i++) this.setValue(byName.get(names[i]!)!, values[i]!, 'good', head.ts);
    for (let i = 0; i < qualityNames.length; i++) this.setQuality(byName.get(qualityNames[i]!)!, qualities[i] as PointQuality, head.ts);
    return true;
  }

  /** The scope key of a point: `name` in the actor's own model, `model.name` in another. */
  key(source: string, name: string): string {
    return source === this.model ? name : `${source}.${name}`;
  }

  /** The models whose updates matter: this one and those read by expressions. */
  sources(): string[] {
    return [this.model, ...[...this.bySource.keys()].filter((s) => s !== this.model)];
  }

  /** A model update: the values it carries (and qualities without a value) of the points read; their readers are marked. */
  apply(source: string, ts: number, values: Readonly<Record<string, number>>, quality: Readonly<Record<string, string>> | undefined): void {
    const inputs = this.bySource.get(source);
    if (!inputs) return;
    for (const input of inputs) {
      const v = values[input.name];
      const q = quality?.[input.name] as PointQuality | undefined;
      if (v !== undefined) this.setValue(input, v, q ?? 'good', ts);
      else if (q !== undefined) this.setQuality(input, q, ts);
    }
  }

  /** A new value of a point (updated in place), its readers marked. */
  private setValue(input: Input<T>, v: number, q: PointQuality, ts: number): void {
    const s = this.samples.get(input.key);
    if (s) {
      s.value = v;
      s.quality = q;
      s.ts = ts;
    } else this.samples.set(input.key, { value: v, quality: q, ts });
    for (const r of input.readers) this.dirty.add(r);
  }

  /** A new quality of a point (a point not seen yet has no value), its readers marked. */
  private setQuality(input: Input<T>, q: PointQuality, ts: number): void {
    const s = this.samples.get(input.key);
    if (s) s.quality = q;
    else this.samples.set(input.key, { value: null, quality: q, ts });
    for (const r of input.readers) this.dirty.add(r);
  }

  /** A value read from Redis (at load): kept if some definition reads it; no reader is marked (a load evaluates them all). */
  set(source: string, name: string, sample: Sample): void {
    const key = this.key(source, name);
    if (this.read.has(key)) this.samples.set(key, { value: sample.value, quality: sample.quality, ts: sample.ts });
  }

  get(key: string): Sample | undefined {
    return this.samples.get(key);
  }

  clear(): void {
    this.samples.clear();
    this.dirty.clear();
  }

  /** Marks a reader for the next evaluation (someone else committed its alarm). */
  mark(reader: T): void {
    this.dirty.add(reader);
  }

  /** The readers marked since the last call; the set starts empty again. */
  takeDirty(): ReadonlySet<T> {
    const d = this.dirty;
    this.dirty = new Set();
    return d;
  }
}
