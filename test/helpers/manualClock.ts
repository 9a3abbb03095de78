/**
 * Fake time for the supervisor's property tests: timers run only when
 * `advance` is called. The wall clock is the monotonic one plus an offset that
 * `jumpWall` moves, as NTP does to a box without a real-time clock.
 */
import type { Clock, TimerHandle } from '../../runtime/clock.js';

interface Timer {
  at: number;
  seq: number;
  fn: () => void;
  cancelled: boolean;
}

export async function flushMicrotasks(rounds = 20): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((r) => setImmediate(r));
}

export class ManualClock implements Clock {
  private t = 0;
  private wallOffset = 1_700_000_000_000;
  private seq = 0;
  private timers: Timer[] = [];

  now(): number {
    return this.t;
  }

  wallNow(): number {
    return this.t + this.wallOffset;
  }

  /** Moves the wall clock only (by a negative amount: backwards); timers and `now()` are untouched. */
  jumpWall(ms: number): void {
    this.wallOffset += ms;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const timer: Timer = { at: this.t + Math.max(0, ms), seq: this.seq++, fn, cancelled: false };
    this.timers.push(timer);
    return { _timer: timer };
  }

  clearTimeout(h: TimerHandle): void {
    (h._timer as Timer).cancelled = true;
  }

  /** Moves time forward by `ms`, running due timers in time order and letting promises settle after each. */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    await flushMicrotasks();
    for (let guard = 0; guard < 10_000; guard++) {
      const due = this.timers.filter((x) => !x.cancelled && x.at <= end).sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (!due) break;
      this.timers = this.timers.filter((x) => x !== due);
      this.t = due.at;
      due.fn();
      await flushMicrotasks();
    }
    this.t = end;
  }
}
