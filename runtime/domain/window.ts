/**
 * Window functions over a point's recent values (`avg(x, 60s)`, `min`, `max`,
 * `delta`, `rate` in a rule's condition or action values), and the bounded
 * ring of samples they read. Pure: times are given, never read from a clock.
 *
 * A point's value is a step function: each sample holds until the next. The
 * window [now − ms, now] sees the samples inside it and the one sample before
 * it (its value still held at the window's start). Over the span that has
 * data (from the window's start, or from the first sample when the ring
 * holds less):
 * - min, max: of the values seen;
 * - avg: the time-weighted mean of the step function (the value now when the span is empty);
 * - delta: the value now minus the value at the span's start;
 * - rate: delta per second over the span (NaN when the span is empty: not enough data, never 0 by default).
 * An empty ring gives NaN (the rule is then blocked, never fired on a guess).
 *
 * The ring keeps at most `capacity` samples and drops those that no window
 * can need (older than the longest window, but the last of those); past the
 * capacity the oldest go first, and the windows then cover less.
 */

export const WINDOW_FUNCTIONS = ['avg', 'min', 'max', 'delta', 'rate'] as const;
export type WindowFn = (typeof WINDOW_FUNCTIONS)[number];

/** The longest window a rule may ask for (the ring's memory is bounded by it). */
export const MAX_WINDOW_MS = 24 * 3_600_000;
export const DEFAULT_RING_CAPACITY = 4_096;

export class WindowRing {
  private readonly times: number[] = [];
  private readonly values: number[] = [];

  constructor(
    /** The longest window read from this ring. */
    readonly spanMs: number,
    readonly capacity = DEFAULT_RING_CAPACITY,
  ) {}

  get size(): number {
    return this.times.length;
  }

  /** Adds a sample (times never go back: an older one replaces nothing and is dropped). */
  push(t: number, v: number): void {
    const n = this.times.length;
    if (n > 0 && t < this.times[n - 1]!) return;
    if (n > 0 && t === this.times[n - 1]) {
      this.values[n - 1] = v;
      return;
    }
    this.times.push(t);
    this.values.push(v);
    // Keep one sample at or before the oldest window's start; drop what is before it.
    let drop = 0;
    while (drop + 1 < this.times.length && this.times[drop + 1]! <= t - this.spanMs) drop++;
    if (this.times.length - drop > this.capacity) drop = this.times.length - this.capacity;
    if (drop > 0) {
      this.times.splice(0, drop);
      this.values.splice(0, drop);
    }
  }

  /** The samples (oldest first), for tests and the dry run. */
  samples(): Array<readonly [number, number]> {
    return this.times.map((t, i) => [t, this.values[i]!] as const);
  }

  /** One window function at `now` over the last `ms`. */
  compute(fn: WindowFn, ms: number, now: number): number {
    return windowValue(fn, this.times, this.values, ms, now);
  }
}

/** A window function over samples given oldest first (times ascending). */
export function windowValue(fn: WindowFn, times: readonly number[], values: readonly number[], ms: number, now: number): number {
  // The last sample at or before now.
  let last = times.length - 1;
  while (last >= 0 && times[last]! > now) last--;
  if (last < 0) return Number.NaN;
  const from = now - ms;
  // The first sample the window sees: the last one at or before its start, or the first inside it.
  let first = last;
  while (first > 0 && times[first]! > from) first--;
  const start = Math.max(from, times[first]!);
  const span = now - start;
  switch (fn) {
    case 'min':
    case 'max': {
      let m = values[first]!;
      for (let i = first + 1; i <= last; i++) m = fn === 'min' ? Math.min(m, values[i]!) : Math.max(m, values[i]!);
      return m;
    }
    case 'avg': {
      if (span <= 0) return values[last]!;
      let sum = 0;
      for (let i = first; i <= last; i++) {
        const a = Math.max(start, times[i]!);
        const b = i < last ? times[i + 1]! : now;
        sum += values[i]! * (b - a);
      }
      return sum / span;
    }
    case 'delta':
      return values[last]! - values[first]!;
    case 'rate':
      return span > 0 ? ((values[last]! - values[first]!) * 1000) / span : Number.NaN;
  }
}
