/**
 * A bounded in-flight window: at most `size` QoS 1 publishes await their
 * PUBACK at once. Slots are taken in runs (`take`), so that a batch goes out
 * in few writes; a waiter is woken only once the run it asked for is free.
 */
export class InflightWindow {
  private used = 0;
  private readonly waiting: Array<{ readonly n: number; readonly wake: () => void }> = [];

  constructor(readonly size: number) {
    if (!Number.isInteger(size) || size < 1) throw new RangeError(`an in-flight window needs at least one slot, got ${size}`);
  }

  /** Takes up to `want` slots free now (no promise on the hot path); returns how many. */
  take(want: number): number {
    const n = Math.max(0, Math.min(want, this.size - this.used));
    this.used += n;
    return n;
  }

  /** Resolves once `n` slots (at most the window's size) are free; takes none. */
  whenFree(n: number): Promise<void> {
    const need = Math.min(n, this.size);
    if (this.size - this.used >= need && this.waiting.length === 0) return Promise.resolve();
    return new Promise((wake) => this.waiting.push({ n: need, wake }));
  }

  /** PUBACKs (or failures) free `n` slots; the oldest waiter whose run is free is woken. */
  release(n = 1): void {
    this.used = Math.max(0, this.used - n);
    const head = this.waiting[0];
    if (head && this.size - this.used >= head.n) {
      this.waiting.shift();
      head.wake();
    }
  }

  get inFlight(): number {
    return this.used;
  }
}
