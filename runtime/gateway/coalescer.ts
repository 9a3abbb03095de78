/**
 * Adaptive coalescing for the live feed: a token bucket per topic.
 *
 * A topic that has been quiet has a full bucket, so its change goes out at once.
 * Under sustained load the bucket empties and changes merge (the latest of each
 * value wins) until the next token, so a topic sends at most `burst` messages
 * plus one per `intervalMs`. Unlike "send on the next tick of a timer", an idle
 * site pays no wait; unlike a delay that grows with load, the wait is bounded by
 * `intervalMs`. Nothing offered is dropped: a merged message carries every name
 * any of its parts carried.
 */

/** Time and timers, injectable so that tests run on fake time. */
export interface CoalescerClock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const realClock: CoalescerClock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

export interface CoalescerOptions {
  /** One token per interval: the steady-state message rate per topic. */
  readonly intervalMs: number;
  /** Messages a quiet topic may send back to back. At least 1. */
  readonly burst: number;
}

interface Bucket<V> {
  tokens: number;
  refilledAt: number;
  pending: V | undefined;
  timer: unknown;
}

export class TopicCoalescer<V> {
  private readonly buckets = new Map<string, Bucket<V>>();

  constructor(
    private readonly opts: CoalescerOptions,
    /** Merges `next` into `into` (the latest of each value wins) and returns the result. */
    private readonly merge: (into: V, next: V) => V,
    private readonly send: (topic: string, value: V) => void,
    private readonly clock: CoalescerClock = realClock,
  ) {
    if (!(opts.intervalMs > 0)) throw new RangeError(`intervalMs must be positive, got ${opts.intervalMs}`);
    if (!(opts.burst >= 1)) throw new RangeError(`burst must be at least 1, got ${opts.burst}`);
  }

  /** Topics holding a merged message that waits for its token. */
  get waiting(): number {
    let n = 0;
    for (const b of this.buckets.values()) if (b.pending !== undefined) n += 1;
    return n;
  }

  offer(topic: string, value: V): void {
    const now = this.clock.now();
    let b = this.buckets.get(topic);
    if (!b) {
      b = { tokens: this.opts.burst, refilledAt: now, pending: undefined, timer: undefined };
      this.buckets.set(topic, b);
    }
    if (b.pending !== undefined) {
      b.pending = this.merge(b.pending, value);
      return;
    }
    this.refill(b, now);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      this.send(topic, value);
      return;
    }
    b.pending = value;
    const wait = Math.ceil((1 - b.tokens) * this.opts.intervalMs);
    b.timer = this.clock.setTimeout(() => this.release(topic, b), wait);
  }

  /** Forgets a topic nobody listens to any more (its waiting message too). */
  drop(topic: string): void {
    const b = this.buckets.get(topic);
    if (b?.timer !== undefined) this.clock.clearTimeout(b.timer);
    this.buckets.delete(topic);
  }

  stop(): void {
    for (const topic of [...this.buckets.keys()]) this.drop(topic);
  }

  private release(topic: string, b: Bucket<V>): void {
    b.timer = undefined;
    const value = b.pending;
    b.pending = undefined;
    if (value === undefined) return;
    this.refill(b, this.clock.now());
    // A timer may fire a hair early; the token it waited for is this message's either way.
    b.tokens = Math.max(0, b.tokens - 1);
    this.send(topic, value);
  }

  private refill(b: Bucket<V>, now: number): void {
    const elapsed = Math.max(0, now - b.refilledAt);
    b.tokens = Math.min(this.opts.burst, b.tokens + elapsed / this.opts.intervalMs);
    b.refilledAt = now;
  }
}
