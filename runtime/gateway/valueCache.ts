/**
 * The gateway's copy of every model's and every channel's values, so that a GET
 * and the live feed do not go to Redis: loaded from the hashes at start and
 * again whenever the subscriber connection comes back (notifications may have
 * been missed), and kept current from the notifications, which carry what c2m
 * and model_set wrote (`modsrv:*:update` as JSON, `comsrv:*:update` as the
 * poll's time and its points text).
 *
 * This is the gateway's hot path (every point of the site passes here, twice
 * when it feeds a model), so an entry keeps its values in flat arrays indexed
 * by name, and a notification is applied without an object per point: at 10k
 * points/s the records and change lists made per point were most of the
 * gateway's garbage. What changed since the feed last sent a topic is kept as
 * a list of indices (`takeChanged`), from which the feed writes its message.
 * A channel entry linked to its models (mapping:c2m) writes the model values it
 * feeds as c2m does in Redis, so the models' c2m notifications need not be parsed.
 */
import type { Quality, ValueRecord } from '../domain/telemetry.js';

export interface ModelUpdateMessage {
  ts?: number;
  v?: Record<string, number>;
  q?: Record<string, string>;
}

const TYPES = 'msca';

/** One channel's or model's values: index ↔ name, and per index the value, time and quality. */
export class ValueEntry {
  readonly names: string[] = [];
  /** Per index, the name as a JSON key with its colon (`"m:1":`), for the feed's messages. */
  readonly keys: string[] = [];
  private readonly index = new Map<string, number>();
  /** Channel points by type (m, s, c, a) and numeric id, so that a channel notification makes no name string per point. */
  private readonly byTypeId: Map<number, number>[] = [new Map(), new Map(), new Map(), new Map()];
  /** NaN: none. */
  readonly value: number[] = [];
  /** NaN: none. */
  readonly ts: number[] = [];
  readonly quality: (Quality | null)[] = [];
  /** Indices changed since the last takeChanged, while tracked; flags to keep each once. */
  private changed: number[] = [];
  private isChanged: Uint8Array = new Uint8Array(16);
  /** Whether changes are kept for the feed (someone listens to this entry's topic). */
  tracking = false;
  /** Per index, the model value a channel point feeds (mapping:c2m), written with it. */
  private forward: ({ readonly entry: ValueEntry; readonly index: number } | undefined)[] = [];
  /** The models this channel feeds, each once. */
  readonly feeds: { readonly id: string; readonly entry: ValueEntry }[] = [];

  /** Point `name` of this channel feeds value `target` of model `id`: what c2m writes to the model hash, the entry follows. */
  link(name: string, id: string, model: ValueEntry, target: string): void {
    this.forward[this.slot(name)] = { entry: model, index: model.slot(target) };
    if (!this.feeds.some((f) => f.entry === model)) this.feeds.push({ id, entry: model });
  }

  /** The index of a name, made on first sight (a value the load did not see). */
  slot(name: string): number {
    let i = this.index.get(name);
    if (i === undefined) {
      i = this.names.length;
      this.names.push(name);
      this.keys.push(`${JSON.stringify(name)}:`);
      this.index.set(name, i);
      this.value.push(Number.NaN);
      this.ts.push(Number.NaN);
      this.quality.push(null);
      const sep = name.indexOf(':');
      const t = sep === 1 ? TYPES.indexOf(name[0]!) : -1;
      const id = t >= 0 ? Number(name.slice(2)) : Number.NaN;
      if (t >= 0 && Number.isSafeInteger(id) && String(id) === name.slice(2)) this.byTypeId[t]!.set(id, i);
      if (this.isChanged.length <= i) {
        const grown = new Uint8Array(this.isChanged.length * 2);
        grown.set(this.isChanged);
        this.isChanged = grown;
      }
    }
    return i;
  }

  /** The index of channel point `type:id` (type 0..3 for m, s, c, a). */
  private pointSlot(type: number, id: number): number {
    return this.byTypeId[type]!.get(id) ?? this.slot(`${TYPES[type]}:${id}`);
  }

  /** A value (good unless a quality stands beside it) or, with value NaN, a quality mark that keeps the last value. */
  set(i: number, value: number, ts: number, quality: Quality | null): void {
    if (!Number.isNaN(value)) {
      this.value[i] = value;
      this.quality[i] = quality ?? 'good';
    } else this.quality[i] = quality;
    this.ts[i] = ts;
    if (this.tracking && this.isChanged[i] === 0) {
      this.isChanged[i] = 1;
      this.changed.push(i);
    }
    const f = this.forward[i];
    if (f) f.entry.set(f.index, value, ts, quality);
  }

  /** The indices changed since the last call (in the order first changed), and forgets them. */
  takeChanged(): number[] {
    const out = this.changed;
    this.changed = [];
    for (const i of out) this.isChanged[i] = 0;
    return out;
  }

  record(i: number): ValueRecord {
    const v = this.value[i]!;
    const t = this.ts[i]!;
    return { value: Number.isNaN(v) ? null : v, ts: Number.isNaN(t) ? null : t, quality: this.quality[i]! };
  }

  /** Every value as a record by name (a GET, a snapshot); names never written are left out, as Redis has none. */
  records(): Map<string, ValueRecord> {
    const out = new Map<string, ValueRecord>();
    for (let i = 0; i < this.names.length; i++) {
      if (this.quality[i] !== null || !Number.isNaN(this.value[i]!) || !Number.isNaN(this.ts[i]!)) out.set(this.names[i]!, this.record(i));
    }
    return out;
  }

  /** Replaces every value with what Redis holds (a reload: names not there keep their slot, with nothing in it). */
  reset(records: ReadonlyMap<string, ValueRecord>): void {
    for (let i = 0; i < this.names.length; i++) {
      this.value[i] = Number.NaN;
      this.ts[i] = Number.NaN;
      this.quality[i] = null;
    }
    for (const [name, r] of records) {
      const i = this.slot(name);
      this.value[i] = r.value ?? Number.NaN;
      this.ts[i] = r.ts ?? Number.NaN;
      this.quality[i] = r.quality;
    }
  }

  /** A model notification's values, then its quality marks (a quality without a value). */
  applyModel(m: ModelUpdateMessage): void {
    const ts = m.ts ?? Number.NaN;
    const v = m.v;
    const q = m.q as Record<string, Quality> | undefined;
    if (v) {
      for (const name in v) {
        const x = v[name];
        this.set(this.slot(name), typeof x === 'number' ? x : Number.NaN, ts, q?.[name] ?? null);
      }
    }
    if (q) for (const name in q) if (!v || !Object.hasOwn(v, name)) this.set(this.slot(name), Number.NaN, ts, q[name]!);
  }

  /**
   * A channel notification (`{ts}\n` then "type id value quality\n" per point, as c2m
   * validated it), read in place: no string per point but the value's digits. Returns the time.
   */
  applyChannel(msg: string): number {
    let pos = msg.indexOf('\n');
    if (pos < 0) return Number(msg);
    const ts = Number(msg.slice(0, pos));
    pos += 1;
    const n = msg.length;
    while (pos < n) {
      let end = msg.indexOf('\n', pos);
      if (end < 0) end = n;
      const type = TYPES.indexOf(msg[pos]!);
      // "t id value quality": the id from its digits, the value up to the next space, then the quality.
      let p = pos + 2;
      let id = 0;
      let c = msg.charCodeAt(p);
      while (c >= 48 && c <= 57) {
        id = id * 10 + (c - 48);
        c = msg.charCodeAt(++p);
      }
      const vEnd = msg.indexOf(' ', p + 1);
      if (type >= 0 && msg.charCodeAt(pos + 1) === 32 && c === 32 && p > pos + 2 && vEnd > p && vEnd < end) {
        const value = vEnd === p + 1 ? Number.NaN : parseDecimal(msg, p + 1, vEnd);
        const quality = vEnd + 1 === end ? null : (msg.slice(vEnd + 1, end) as Quality);
        this.set(this.pointSlot(type, id), value, ts, quality);
      }
      pos = end + 1;
    }
    return ts;
  }
}

const POW10 = [1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15];

/**
 * The decimal text s[from, to) (as C2mBatch writes it: -12.500000) as a number, equal to
 * Number() of it: digits that fit 2^53 divided by an exact power of ten round once, as
 * Number() does; anything longer or else goes through Number().
 */
export function parseDecimal(s: string, from: number, to: number): number {
  let p = from;
  const neg = s.charCodeAt(p) === 45;
  if (neg) p++;
  let n = 0;
  let digits = 0;
  let frac = -1;
  for (; p < to; p++) {
    const c = s.charCodeAt(p);
    if (c >= 48 && c <= 57) {
      n = n * 10 + (c - 48);
      digits++;
    } else if (c === 46 && frac < 0) frac = p;
    else return Number(s.slice(from, to));
  }
  const scale = frac < 0 ? 0 : to - frac - 1;
  if (digits === 0 || digits > 15 || scale >= POW10.length) return Number(s.slice(from, to));
  const v = n / POW10[scale]!;
  return neg ? -v : v;
}

/** Ids read together while loading (a 1,000-point model is three hashes, ~50 kB). */
const LOAD_WAVE = 8;

export class ValueCache {
  private readonly entries = new Map<string, ValueEntry>();
  /** Bumped at every change of an entry, so that what is derived from its values can be kept until then. */
  private readonly versions = new Map<string, number>();
  private ready = false;

  constructor(
    private readonly loadOne: (id: string) => Promise<Map<string, ValueRecord>>,
    readonly ids: readonly string[],
  ) {
    for (const id of ids) this.entries.set(id, new ValueEntry());
  }

  async load(): Promise<void> {
    this.ready = false;
    // In waves of LOAD_WAVE ids, each wave's reads leaving together (ioredis pipelines them): a REST request
    // that reads Redis meanwhile, on the same connection, waits behind one wave, not behind the whole site.
    for (let i = 0; i < this.ids.length; i += LOAD_WAVE) {
      await Promise.all(
        this.ids.slice(i, i + LOAD_WAVE).map(async (id) => {
          this.entries.get(id)!.reset(await this.loadOne(id));
          this.bump(id);
        }),
      );
    }
    this.ready = true;
  }

  /** The entry of `id` without changing it (to link it), or undefined. */
  entry(id: string): ValueEntry | undefined {
    return this.entries.get(id);
  }

  /** The entry that a notification for `id` changes (its version bumped), or undefined for an id it does not hold. */
  change(id: string): ValueEntry | undefined {
    const e = this.entries.get(id);
    if (e) this.bump(id);
    return e;
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
    return this.ready ? this.entries.get(id)?.records() : undefined;
  }
}
