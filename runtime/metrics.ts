/**
 * Process-wide measurements that the heartbeat reports (and `voltage status`
 * shows): kept in HDR histograms from node:perf_hooks, reset at each report.
 */
import { createHistogram, type RecordableHistogram } from 'node:perf_hooks';
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Prometheus metrics of this process, served at GET /metrics. */
export const prometheus = new Registry();

let collecting = false;
/**
 * The process's own metrics (voltage_process_cpu_seconds_total, voltage_nodejs_heap_size_used_bytes, …),
 * from the runtime's start on. Not at import: every process of the bundle (the gateway's, the
 * simulator) would run prom-client's event-loop monitor for a registry nobody reads, a timer
 * that wakes the process 100 times a second (about 0.5 % of a core each on this VM).
 */
export function collectProcessMetrics(): void {
  if (collecting) return;
  collecting = true;
  collectDefaultMetrics({ register: prometheus, prefix: 'voltage_' });
}

export const pointsTotal = new Counter({ name: 'voltage_points_total', help: 'Points written to Redis through c2m', registers: [prometheus] });
export const pollToRedisSeconds = new Histogram({
  name: 'voltage_poll_to_redis_seconds',
  help: 'From a poll start to Redis acknowledging its c2m (FCALL included)',
  buckets: [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2],
  registers: [prometheus],
});

/** From a poll's start to Redis acknowledging its c2m, in microseconds. */
export const pollToRedisUs: RecordableHistogram = createHistogram();

export function recordPoll(points: number, ms: number): void {
  pollToRedisUs.record(Math.max(1, Math.round(ms * 1000)));
  pollToRedisSeconds.observe(ms / 1000);
  pointsTotal.inc(points);
}

/** p50 / p99 / max in ms since the last call, then resets. */
export function takePollToRedis(): { p50: number; p99: number; max: number; count: number } {
  const h = pollToRedisUs;
  const out =
    h.count === 0 ? { p50: 0, p99: 0, max: 0, count: 0 } : { p50: h.percentile(50) / 1000, p99: h.percentile(99) / 1000, max: h.max / 1000, count: h.count };
  h.reset();
  return out;
}
