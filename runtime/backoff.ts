/**
 * Backoff policies as small pure functions, shared by the supervisor (restart
 * delays), channels (reconnects) and the Redis connection (start-up retries).
 * Semantics follow Akka's BackoffSupervisor: delay = min(max, min * 2^attempt),
 * stretched by up to `randomFactor` of itself so that many failing actors do
 * not retry in lock-step.
 */
export interface BackoffPolicy {
  readonly minBackoffMs: number;
  readonly maxBackoffMs: number;
  /** 0 = no jitter; 0.2 = up to 20 % longer. */
  readonly randomFactor: number;
  /** A child that has run this long without failing starts again at attempt 0. */
  readonly resetBackoffAfterMs: number;
}

export const defaultBackoff: BackoffPolicy = {
  minBackoffMs: 200,
  maxBackoffMs: 30_000,
  randomFactor: 0.2,
  resetBackoffAfterMs: 60_000,
};

/** Delay before retry number `attempt` (0-based). `random` is in [0, 1). */
export function backoffDelay(policy: BackoffPolicy, attempt: number, random: number = Math.random()): number {
  const exp = policy.minBackoffMs * 2 ** Math.min(attempt, 30);
  const base = Math.min(policy.maxBackoffMs, exp);
  return Math.round(base * (1 + policy.randomFactor * random));
}
