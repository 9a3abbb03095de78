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
import { NameSet, scanUpdate, type ScanTarget } from './scanUpdate.js';

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
  /** Per source model: the names of its points that are read. */
  private readonly names = new Map<string, NameSet>();
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
        }
        if (!input.readers.includes(reader)) input.readers.push(reader);
      }
    }
  }

  /**
   * The values and qualities of the points read, out of a model update as published,
   * without parsing the rest; undefined when the message is not of the plain shape
   * that a scan reads (the caller parses it in full then).
   */
  pick(source: string, message: string): PickedUpdate | undefined {
    const inputs = this.bySource.get(source);
    if (!inputs) return undefined;
    let names = this.names.get(source);
    if (!names) {
      names = new NameSet(inputs.map((i) => i.name));
      this.names.set(source, names);
    }
    const values: Record<string, number> = {};
    let quality: Record<string, string> | undefined;
    const target: ScanTarget = {
      names,
      onValue: (name, v) => {
        values[name] = v;
      },
      onQuality: (name, q) => {
        quality ??= {};
        quality[name] = q;
      },
    };
    const head = scanUpdate(message, target);
    return head && { ts: head.ts, values, quality };
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
      if (v === undefined && q === undefined) continue;
      let s = this.samples.get(input.key);
      if (v !== undefined) {
        if (s) {
          s.value = v;
          s.quality = q ?? 'good';
          s.ts = ts;
        } else this.samples.set(input.key, { value: v, quality: q ?? 'good', ts });
      } else if (s) s.quality = q!;
      else this.samples.set(input.key, (s = { value: null, quality: q!, ts }));
      for (const r of input.readers) this.dirty.add(r);
    }
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
