/**
 * Time as a dependency, so that the supervisor's laws can be tested with fake
 * time. Production code passes `systemClock`; tests pass a manual clock.
 *
 * Two readings, never mixed: `now()` is monotonic (durations, restart
 * intensity, backoff resets) and `wallNow()` is the wall clock (times shown
 * to people). An edge box without a real-time clock jumps by years when NTP
 * syncs; a duration measured on the wall clock would jump with it.
 */
import { performance } from 'node:perf_hooks';

export interface TimerHandle {
  readonly _timer: unknown;
}

export interface Clock {
  /** Monotonic milliseconds from an arbitrary origin: for durations only. */
  now(): number;
  /** Wall-clock milliseconds since the epoch: for display only. */
  wallNow(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  wallNow: () => Date.now(),
  setTimeout: (fn, ms) => ({ _timer: setTimeout(fn, ms) }),
  clearTimeout: (h) => clearTimeout(h._timer as NodeJS.Timeout),
};
