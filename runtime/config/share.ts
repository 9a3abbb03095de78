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
  /** The shared objects by their content's key (see `key`). */
  private readonly objects = new Map<string, object>();
  /** Each shared object's number: an object that holds it is keyed by this number, not by its content again. */
  private readonly ids = new Map<object, number>();
  /** Field names as JSON strings, made once each. */
  private readonly names = new Map<string, string>();

  /** The shared copy of `value`: a string, a plain object of such values (deeply), or the value itself. */
  share<T>(value: T): T {
    if (typeof value === 'string') return this.string(value) as T;
    if (!isPlainObject(value)) return value;
    // A spread copy keeps the fields in-object (the parser's objects may hold them in an extra array).
    const copy: Record<string, unknown> = { ...value };
    let key: string | undefined = '{';
    for (const k of Object.keys(copy)) {
      const v = (copy[k] = this.share(copy[k]));
      const part: string | undefined = key === undefined ? undefined : this.part(v);
      key = part === undefined ? undefined : `${key}${this.name(k)}${part}`;
    }
    if (key === undefined) return copy as T;
    const known = this.objects.get(key);
    if (known) return known as T;
    this.objects.set(key, copy);
    this.ids.set(copy, this.ids.size);
    return copy as T;
  }

  /**
   * The shared copy of a map of names to plain values: the instances of one template
   * have equal maps of their measurements (1,000 entries each, say), kept once.
   * The map must not be changed afterwards (it is handed out as a ReadonlyMap).
   */
  shareMap<V>(map: Map<string, V>): ReadonlyMap<string, V> {
    let key = 'map';
    for (const [k, v] of map) {
      // A plain object is keyed by its shared copy's number: equal content, equal number.
      const part = this.part(isPlainObject(v) ? this.share(v) : v);
      if (part === undefined) return map;
      key += `${this.name(k)}${part}`;
    }
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

  private name(k: string): string {
    let n = this.names.get(k);
    if (n === undefined) {
      n = JSON.stringify(k);
      this.names.set(k, n);
    }
    return n;
  }

  /**
   * A value's part of its holder's key, self-delimiting and telling apart what `Object.is`
   * does (-0 and 0, NaN, undefined and an absent key by the key's name): undefined for
   * anything but numbers, strings, booleans, null, undefined and shared plain objects.
   */
  private part(v: unknown): string | undefined {
    switch (typeof v) {
      case 'string':
        return `s${JSON.stringify(v)}`;
      case 'number':
        return Object.is(v, -0) ? 'n-0;' : `n${v};`;
      case 'boolean':
        return v ? 't' : 'f';
      case 'undefined':
        return 'u';
      case 'object': {
        if (v === null) return 'z';
        const id = this.ids.get(v);
        return id === undefined ? undefined : `o${id};`;
      }
      default:
        return undefined;
    }
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
