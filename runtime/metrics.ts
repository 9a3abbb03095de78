/**
 * Process-wide measurements that the heartbeat reports (and `voltage status`
 * shows): kept in HDR histograms from node:perf_hooks, reset at each report.
 */
import { createHistogram, type RecordableHistogram } from 'node:perf_hooks';

/** From a poll's start to Redis acknowledging its c2m, in microseconds. */
export const pollToRedisUs: RecordableHistogram = createHistogram();

export function recordPollToRedis(ms: number): void {
  pollToRedisUs.record(Math.max(1, Math.round(ms * 1000)));
}

/** p50 / p99 / max in ms since the last call, then resets. */
export function takePollToRedis(): { p50: number; p99: number; max: number; count: number } {
  const h = pollToRedisUs;
  const out = h.count === 0
    ? { p50: 0, p99: 0, max: 0, count: 0 }
    : { p50: h.percentile(50) / 1000, p99: h.percentile(99) / 1000, max: h.max / 1000, count: h.count };
  h.reset();
  return out;
}
