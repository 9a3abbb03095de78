/**
 * The gateway's copy of every model's and every channel's values, so that a GET
 * and the live feed do not go to Redis: loaded from the hashes at start and
 * again whenever the subscriber connection comes back (notifications may have
 * been missed), and kept current from the notifications, which carry what c2m
 * and model_set wrote (`modsrv:*:update` as JSON, `comsrv:*:update` as the
 * poll's time and its points text).
 */
import { readChannelUpdate } from '../domain/c2mBatch.js';
import type { Quality, ValueRecord } from '../domain/telemetry.js';

export interface ModelUpdateMessage {
  ts?: number;
  v?: Record<string, number>;
  q?: Record<string, string>;
}

/** One change a notification carries: a value (good unless a quality stands beside it) or, with a null value, a quality mark. */
export type Change = readonly [name: string, value: number | null, quality: Quality | null];

export class ValueCache {
  private readonly values = new Map<string, Map<string, ValueRecord>>();
  /** Bumped at every change of an entry, so that what is derived from its values can be kept until then. */
  private readonly versions = new Map<string, number>();
  private ready = false;

  constructor(
    private readonly loadOne: (id: string) => Promise<Map<string, ValueRecord>>,
    private readonly ids: readonly string[],
  ) {}

  async load(): Promise<void> {
    this.ready = false;
    for (const id of this.ids) {
      this.values.set(id, await this.loadOne(id));
      this.bump(id);
    }
    this.ready = true;
  }

  /** Applies a notification's changes; returns the records it changed (what the feed sends), or undefined for an id it does not hold. */
  apply(id: string, ts: number | null, changes: Iterable<Change>): Record<string, ValueRecord> | undefined {
    const values = this.values.get(id);
    if (!values) return undefined;
    this.bump(id);
    const changed: Record<string, ValueRecord> = Object.create(null) as Record<string, ValueRecord>;
    for (const [name, value, quality] of changes) {
      // A quality-only mark (the device stopped answering) keeps the last value, as c2m does in Redis.
      const rec: ValueRecord = value !== null ? { value, ts, quality: quality ?? 'good' } : { value: values.get(name)?.value ?? null, ts, quality };
      values.set(name, rec);
      changed[name] = rec;
    }
    return changed;
  }

  private bump(id: string): void {
    this.versions.set(id, (this.versions.get(id) ?? 0) + 1);
  }

  /** The version of an entry's values (changes whenever they do), or undefined while (re)loading. */
  version(id: string): number | undefined {
    return this.ready ? this.versions.get(id) : undefined;
  }

  /** The values of an entry, or undefined while (re)loading: then ask Redis. */
  get(id: string): ReadonlyMap<string, ValueRecord> | undefined {
    return this.ready ? this.values.get(id) : undefined;
  }
}

/** The changes in a model notification (values first; a quality without a value is a quality mark). */
export function modelChanges(m: ModelUpdateMessage): Change[] {
  const v = m.v ?? {};
  const q = (m.q ?? {}) as Record<string, Quality>;
  const out: Change[] = [];
  for (const [name, value] of Object.entries(v)) out.push([name, value, q[name] ?? null]);
  for (const [name, quality] of Object.entries(q)) if (!(name in v)) out.push([name, null, quality]);
  return out;
}

/** The time and the changes in a channel notification; names are `type:id` as in the feed. */
export function channelChanges(msg: string): { ts: number; changes: Change[] } {
  const changes: Change[] = [];
  const ts = readChannelUpdate(msg, (type, id, value, quality) => changes.push([`${type}:${id}`, value, quality]));
  return { ts, changes };
}
