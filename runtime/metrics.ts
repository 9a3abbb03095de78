/**
 * Process-wide measurements that the heartbeat reports (and `voltage status`
 * shows): kept in HDR histograms from node:perf_hooks, reset at each report.
 */
import { createHistogram, type RecordableHistogram } from 'node:perf_hooks';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { LoopDelayMonitor, type LoopDelayReader } from './loopDelay.js';

/** Prometheus metrics of this process, served at GET /metrics. */
export const prometheus = new Registry();

/** The period of the process's event-loop delay monitor (runtime/loopDelay.ts). */
export const LOOP_PERIOD_MS = 10;

/**
 * prom-client's own event-loop monitor is parked: `collectDefaultMetrics` always starts one, at
 * `eventLoopMonitoringPrecision`; at ~24.8 days it never falls due, and its gauges are replaced by
 * ones read from the process's one monitor.
 */
const PARKED_MS = 2 ** 31 - 1;

/** prom-client's names for the event-loop gauges (lib/metrics/eventLoopLag.js), kept for dashboards. */
const LAG = 'nodejs_eventloop_lag';

let loopMonitor: LoopDelayMonitor | undefined;
/**
 * The process's own metrics (voltage_process_cpu_seconds_total, voltage_nodejs_heap_size_used_bytes, …),
 * from the runtime's start on; returns the process's one event-loop delay monitor, for the heartbeat.
 * Not at import: every process of the bundle (the gateway's, the simulator) would run an event-loop
 * monitor for a registry nobody reads, a timer that wakes the process 100 times a second (about 0.5 %
 * of a core each on this VM).
 */
export function collectProcessMetrics(): LoopDelayMonitor {
  if (loopMonitor) return loopMonitor;
  loopMonitor = new LoopDelayMonitor(LOOP_PERIOD_MS);
  loopMonitor.start();
  const prefix = 'voltage_';
  collectDefaultMetrics({ register: prometheus, prefix, eventLoopMonitoringPrecision: PARKED_MS });
  for (const suffix of ['seconds', 'min_seconds', 'max_seconds', 'mean_seconds', 'stddev_seconds', 'p50_seconds', 'p90_seconds', 'p99_seconds']) {
    prometheus.removeSingleMetric(`${prefix}${LAG}_${suffix}`);
  }
  registerLoopGauges(prefix, loopMonitor.reader());
  return loopMonitor;
}

/**
 * prom-client's event-loop gauges, from the process's monitor, over the window since the last
 * scrape: the delay beyond the monitor's period (prom-client's own reported whole timer intervals,
 * ~10 ms on an idle loop). `…_lag_seconds` is, as in prom-client, one probe taken at the scrape.
 */
function registerLoopGauges(prefix: string, window: LoopDelayReader): void {
  new Gauge({
    name: `${prefix}${LAG}_seconds`,
    help: 'Lag of event loop in seconds.',
    registers: [prometheus],
    // Sets all the event-loop gauges, once per scrape. Registered first, as in prom-client: the registry reads
    // its metrics in order, so the others are set before they are read.
    async collect() {
      const d = window.take();
      min.set(d.minMs / 1000);
      max.set(d.maxMs / 1000);
      mean.set(d.meanMs / 1000);
      stddev.set(d.stddevMs / 1000);
      p50.set(d.p50Ms / 1000);
      p90.set(d.p90Ms / 1000);
      p99.set(d.p99Ms / 1000);
      const start = performance.now();
      await new Promise((r) => setImmediate(r));
      this.set((performance.now() - start) / 1000);
    },
  });
  const gauge = (suffix: string, help: string) => new Gauge({ name: `${prefix}${LAG}_${suffix}`, help, registers: [prometheus] });
  const min = gauge('min_seconds', 'The minimum recorded event loop delay.');
  const max = gauge('max_seconds', 'The maximum recorded event loop delay.');
  const mean = gauge('mean_seconds', 'The mean of the recorded event loop delays.');
  const stddev = gauge('stddev_seconds', 'The standard deviation of the recorded event loop delays.');
  const p50 = gauge('p50_seconds', 'The 50th percentile of the recorded event loop delays.');
  const p90 = gauge('p90_seconds', 'The 90th percentile of the recorded event loop delays.');
  const p99 = gauge('p99_seconds', 'The 99th percentile of the recorded event loop delays.');
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
