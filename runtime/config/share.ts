/**
 * Shares identical parts of the resolved site: the runtime keeps the site's
 * per-point tables for its whole life, and every object in them is one more
 * that each of V8's mark-compacts walks. Channels that read one point table
 * (100 devices of one kind, one CSV) get the same point objects;
 * equal nested values (a waveform, a Modbus address, a unit) and equal
 * strings (names, kinds) are one object each.
 *
 * Sharing never changes a value: a shared object has the same keys, in the
 * same order, with the same values (-0 kept apart from 0) as each object it
 * stands for. Only plain data is shared (objects of Object.prototype; arrays
 * are left as they are). Shared objects are not frozen: V8 gave frozen ones a
 * hidden class each (tried: 1,000 points, 1,000 classes), which costs more than
 * the site's objects saved. Nothing changes a site's config after it is loaded
 * (site.ts: typed immutable), and sharing relies on that.
 */

/** One site's shared values, alive only while the site is resolved. */
export class ValueSharer {
  private readonly strings = new Map<string, string>();
  private readonly objects = new Map<string, object>();

  /** The shared copy of `value`: a string, a plain object of such values (deeply), or the value itself. */
  share<T>(value: T): T {
    if (typeof value === 'string') return this.string(value) as T;
    if (!isPlainObject(value)) return value;
    // A spread copy keeps the fields in-object (the parser's objects may hold them in an extra array).
    const copy: Record<string, unknown> = { ...value };
    for (const k of Object.keys(copy)) copy[k] = this.share(copy[k]);
    const key = identity(copy);
    if (key === undefined) return copy as T;
    const known = this.objects.get(key);
    if (known) return known as T;
    this.objects.set(key, copy);
    return copy as T;
  }

  /**
   * The shared copy of a map of names to plain values: the instances of one template
   * have equal maps of their measurements (1,000 entries each, say), kept once.
   * The map must not be changed afterwards (it is handed out as a ReadonlyMap).
   */
  shareMap<V>(map: Map<string, V>): ReadonlyMap<string, V> {
    const parts: string[] = [];
    for (const [k, v] of map) {
      const value = isPlainObject(v) ? identity(v) : typeof v === 'string' ? JSON.stringify(v) : undefined;
      if (value === undefined) return map;
      parts.push(JSON.stringify(k), value);
    }
    const key = `map\u0000${parts.join('\u0000')}`;
    const known = this.objects.get(key);
    if (known) return known as ReadonlyMap<string, V>;
    this.objects.set(key, map);
    return map;
  }

  private string(s: string): string {
    const known = this.strings.get(s);
    if (known !== undefined) return known;
    this.strings.set(s, s);
    return s;
  }
}

/**
 * `s` as one sequential string: a string built by concatenation (`${model}.${id}`) is
 * kept by V8 as a tree of its parts, two or three objects where one does.
 */
export function flatString(s: string): string {
  return JSON.parse(JSON.stringify(s)) as string;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && Object.getPrototypeOf(v) === Object.prototype;
}

/**
 * The keys (undefined-valued ones too) and the JSON of the values, with what JSON
 * cannot tell apart (-0, non-finite numbers) written out; undefined for a value
 * that holds anything but numbers, strings, booleans, null, undefined and plain objects.
 */
function identity(o: Record<string, unknown>): string | undefined {
  let plain = true;
  const json = JSON.stringify(o, (_k, v: unknown) => {
    if (typeof v === 'number') return Object.is(v, -0) || !Number.isFinite(v) ? `\u0000${Object.is(v, -0) ? '-0' : String(v)}` : v;
    if (typeof v === 'string') return v.startsWith('\u0000') ? `\u0000${v}` : v;
    if (v === null || v === undefined || typeof v === 'boolean') return v;
    if (isPlainObject(v)) return Object.keys(v).length === 0 ? v : { '\u0000keys': Object.keys(v).join(','), ...v };
    plain = false;
    return null;
  });
  return plain ? json : undefined;
}
