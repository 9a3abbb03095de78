import { setTimeout as delay } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { LoopDelayMonitor } from '../../runtime/loopDelay.js';
import { collectProcessMetrics, prometheus } from '../../runtime/metrics.js';

/** Holds the event loop for `ms`. */
function stall(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    /* busy */
  }
}

/** A gauge's value in Prometheus text. */
function gauge(text: string, name: string): number {
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  if (!m) throw new Error(`${name} is not in /metrics`);
  return Number(m[1]);
}

describe("the process's one event-loop delay monitor", () => {
  it("sees a stall in every reader's window, and reads the delay beyond its period, not the period", async () => {
    const monitor = new LoopDelayMonitor(10);
    monitor.start();
    try {
      const heartbeat = monitor.reader();
      const scrape = monitor.reader();
      await delay(50);
      stall(60);
      await delay(30);
      const a = heartbeat.take();
      expect(a.maxMs).toBeGreaterThanOrEqual(45);
      expect(scrape.take().maxMs).toBeGreaterThanOrEqual(45);
      // A new window: the stall is gone from it, and an idle loop's delay is a few ms at most
      // (monitorEventLoopDelay's raw intervals would read the period, ~10 ms).
      await delay(200);
      const idle = heartbeat.take();
      expect(idle.count).toBeGreaterThan(5);
      expect(idle.maxMs).toBeLessThan(45);
      expect(idle.p50Ms).toBeLessThan(5);
      heartbeat.close();
      await delay(30);
      expect(heartbeat.take().count).toBe(0);
    } finally {
      monitor.stop();
    }
  });

  it("feeds /metrics' event-loop gauges, one of each name, besides prom-client's other default metrics", async () => {
    collectProcessMetrics();
    await prometheus.metrics(); // a fresh window
    await delay(50);
    stall(60);
    await delay(30);
    const text = await prometheus.metrics();
    for (const suffix of ['seconds', 'min_seconds', 'max_seconds', 'mean_seconds', 'stddev_seconds', 'p50_seconds', 'p90_seconds', 'p99_seconds']) {
      expect(text.match(new RegExp(`^# TYPE voltage_nodejs_eventloop_lag_${suffix} gauge$`, 'gm'))).toHaveLength(1);
    }
    expect(gauge(text, 'voltage_nodejs_eventloop_lag_max_seconds')).toBeGreaterThanOrEqual(0.045);
    expect(gauge(text, 'voltage_nodejs_eventloop_lag_p50_seconds')).toBeLessThan(0.005);
    expect(text).toMatch(/^voltage_process_cpu_seconds_total \d/m);
    // The next scrape's window no longer holds the stall.
    await delay(50);
    expect(gauge(await prometheus.metrics(), 'voltage_nodejs_eventloop_lag_max_seconds')).toBeLessThan(0.045);
  });
});
