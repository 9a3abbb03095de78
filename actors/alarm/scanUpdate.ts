/**
 * Reads a model update notification (`{"ts":…,"src":"c2m","v":{…},"q":{…}}`) for
 * the few points an alarm actor wants, without building the whole object: an
 * update of 1,000 values with 100 alarmed points costs a pass over the text and
 * 100 numbers, not a dictionary of 1,000 entries to collect (JSON.parse of such a
 * message costs ~10× the pass, most of it garbage).
 *
 * Strict about shape: anything it does not expect (an escape, a nested value, a
 * missing `ts`) gives undefined, and the caller parses the message in full
 * (actors/model/ModelActor.ts's `parseUpdate`). Never throws.
 */

/** What a scan found: the update's time and origin; the wanted pairs went to `onValue` / `onQuality`. */
export interface ScannedUpdate {
  readonly ts: number;
  readonly origin: 'c2m' | 'calc';
}

export interface ScanTarget {
  /** The point names whose values and qualities are wanted. */
  readonly names: NameSet;
  onValue(name: string, value: number): void;
  onQuality(name: string, quality: string): void;
}

/**
 * A set of names that a key of the text is looked up in without cutting it out:
 * an update of 1,000 values with 100 wanted makes 100 strings, not 1,000. The
 * lookup hashes the key's characters in place and compares the few candidates.
 */
export class NameSet {
  private readonly byHash = new Map<number, string[]>();

  constructor(names: Iterable<string>) {
    for (const n of names) {
      const h = hashRange(n, 0, n.length);
      const list = this.byHash.get(h);
      if (!list) this.byHash.set(h, [n]);
      else if (!list.includes(n)) list.push(n);
    }
  }

  /** The name equal to `s` from `from` to `to` (exclusive), or undefined when it is not in the set. */
  find(s: string, from: number, to: number): string | undefined {
    const list = this.byHash.get(hashRange(s, from, to));
    if (!list) return undefined;
    for (const n of list) if (n.length === to - from && s.startsWith(n, from)) return n;
    return undefined;
  }
}

/**
 * FNV-1a over the UTF-16 code units of `s` from `from` to `to`, cut to 30 bits: a small integer
 * that V8 keeps unboxed. The full 32 bits (`h >>> 0`) were above 2^31 half the time, and each such
 * key looked up in the Map was a heap number: ~1.6 kB of garbage per notification of 100 values.
 */
function hashRange(s: string, from: number, to: number): number {
  let h = 2166136261;
  for (let i = from; i < to; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h & 0x3fffffff;
}

const QUOTE = 0x22;
const COLON = 0x3a;
const COMMA = 0x2c;
const OPEN = 0x7b;
const CLOSE = 0x7d;

/** A string starting at `at` (its opening quote): the index of its closing quote, or -1. */
function stringEnd(s: string, at: number): number {
  return s.charCodeAt(at) === QUOTE ? s.indexOf('"', at + 1) : -1;
}

/** A scalar (number, string, true, false, null) starting at `at`: the index just past it. */
function scalarEnd(s: string, at: number): number {
  if (s.charCodeAt(at) === QUOTE) {
    const e = s.indexOf('"', at + 1);
    return e < 0 ? -1 : e + 1;
  }
  let i = at;
  for (; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === COMMA || c === CLOSE) break;
    if (c === OPEN || c === QUOTE || c === 0x5b) return -1;
  }
  return i > at ? i : -1;
}

/**
 * A flat object `{"name":scalar,…}` starting at `at`; each wanted pair is handed on.
 * Returns the index just past its closing brace, or -1 when it is not that shape.
 */
function scanObject(s: string, at: number, target: ScanTarget, quality: boolean): number {
  if (s.charCodeAt(at) !== OPEN) return -1;
  let i = at + 1;
  if (s.charCodeAt(i) === CLOSE) return i + 1;
  for (;;) {
    const keyEnd = stringEnd(s, i);
    if (keyEnd < 0 || s.charCodeAt(keyEnd + 1) !== COLON) return -1;
    const valueAt = keyEnd + 2;
    const valueEnd = scalarEnd(s, valueAt);
    if (valueEnd < 0) return -1;
    const name = target.names.find(s, i + 1, keyEnd);
    if (name !== undefined) {
      if (quality) {
        if (s.charCodeAt(valueAt) !== QUOTE) return -1;
        target.onQuality(name, s.slice(valueAt + 1, valueEnd - 1));
      } else {
        const v = Number(s.slice(valueAt, valueEnd));
        if (Number.isNaN(v)) return -1;
        target.onValue(name, v);
      }
    }
    const c = s.charCodeAt(valueEnd);
    if (c === CLOSE) return valueEnd + 1;
    if (c !== COMMA) return -1;
    i = valueEnd + 1;
  }
}

/**
 * Scans one notification. The pairs are handed on as they are met (values and
 * qualities in the message's order, `ts` possibly after them); when the scan
 * gives undefined some may have been handed on already: the caller drops them
 * and treats the message in full.
 */
export function scanUpdate(s: string, target: ScanTarget): ScannedUpdate | undefined {
  // Escapes and whitespace are what JSON.parse is for: a message with either is not this shape.
  if (s.indexOf('\\') >= 0 || s.charCodeAt(0) !== OPEN) return undefined;
  let ts: number | undefined;
  let origin: ScannedUpdate['origin'] | undefined;
  let i = 1;
  if (s.charCodeAt(i) === CLOSE) return undefined;
  for (;;) {
    const keyEnd = stringEnd(s, i);
    if (keyEnd < 0 || s.charCodeAt(keyEnd + 1) !== COLON) return undefined;
    const key = s.slice(i + 1, keyEnd);
    const at = keyEnd + 2;
    let end: number;
    if (key === 'v' || key === 'q') end = scanObject(s, at, target, key === 'q');
    else {
      end = scalarEnd(s, at);
      if (end < 0) return undefined;
      const text = s.slice(at, end);
      if (key === 'ts') ts = Number(text);
      else if (key === 'src') origin = text === '"c2m"' ? 'c2m' : text === '"calc"' ? 'calc' : undefined;
    }
    if (end < 0) return undefined;
    const c = s.charCodeAt(end);
    if (c === CLOSE) break;
    if (c !== COMMA) return undefined;
    i = end + 1;
  }
  if (ts === undefined || !Number.isFinite(ts) || origin === undefined) return undefined;
  return { ts, origin };
}
