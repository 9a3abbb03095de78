/**
 * Time as a dependency, so that the supervisor's laws can be tested with fake
 * time. Production code passes `systemClock`; tests pass a manual clock.
 */
export interface TimerHandle {
  readonly _timer: unknown;
}

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => ({ _timer: setTimeout(fn, ms) }),
  clearTimeout: (h) => clearTimeout(h._timer as NodeJS.Timeout),
};
