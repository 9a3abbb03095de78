/** A bounded in-flight window: at most `size` QoS 1 publishes await their PUBACK at once. */
export class InflightWindow {
  private used = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly size: number) {}

  /** Takes a slot if one is free at once (no promise on the hot path). */
  tryAcquire(): boolean {
    if (this.used >= this.size) return false;
    this.used += 1;
    return true;
  }

  /** Resolves once a slot is free (at once while fewer than `size` are in flight). */
  acquire(): Promise<void> {
    if (this.used < this.size) {
      this.used += 1;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiting.push(() => resolve()));
  }

  /** A PUBACK (or a failure) frees a slot; the oldest waiter takes it. */
  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.used = Math.max(0, this.used - 1);
  }

  get inFlight(): number {
    return this.used;
  }
}
