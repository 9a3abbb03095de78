/**
 * The process's one event-loop delay monitor: a repeating timer whose lateness is the delay, read by
 * the heartbeat (`voltage status`) and by /metrics (`voltage_nodejs_eventloop_lag_*`), each through
 * a window of its own.
 *
 * One timer, not one per reader: the heartbeat's `monitorEventLoopDelay` and prom-client's own ran
 * side by side, two 10 ms timers where one tells the same (docs/benchmarks.md, round 21, "feed
 * wake-ups"). `monitorEventLoopDelay`'s histogram cannot be added into another (Node 20 refuses an
 * ELDHistogram in `RecordableHistogram.add`), so two readers resetting at their own pace need their
 * own histograms: each tick records the delay into every reader's.
 *
 * What is recorded is the delay beyond the timer's period (an idle loop reads ~0-1 ms, libuv's clock
 * being in whole milliseconds), not the whole interval that `monitorEventLoopDelay` records (an idle
 * loop read ~10 ms there). A stall shorter than the period is seen only if the timer falls due
 * within it: a stall of S ms is caught with probability S / period, one as long as the period or
 * longer always.
 *
 * Never keeps the process alive (the timer is unref'd).
 */
import { createHistogram, type RecordableHistogram } from 'node:perf_hooks';

/** A reader's window, in ms (all 0 when the window holds no tick). */
export interface LoopDelayFigures {
  readonly count: number;
  readonly minMs: number;
  readonly maxMs: number;
  readonly meanMs: number;
  readonly stddevMs: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
}

export interface LoopDelayReader {
  /** The delays since the previous take (or since the reader was made); then starts a new window. */
  take(): LoopDelayFigures;
  /** Stops recording into this reader. */
  close(): void;
}

const EMPTY: LoopDelayFigures = { count: 0, minMs: 0, maxMs: 0, meanMs: 0, stddevMs: 0, p50Ms: 0, p90Ms: 0, p99Ms: 0 };

export class LoopDelayMonitor {
  private readonly windows = new Set<RecordableHistogram>();
  private timer: NodeJS.Timeout | undefined;

  constructor(readonly periodMs: number) {}

  /** Starts the timer (again after stop). */
  start(): void {
    if (this.timer) return;
    let last = performance.now();
    this.timer = setInterval(() => {
      const now = performance.now();
      // Microseconds, at least 1 (a RecordableHistogram takes no 0).
      const us = Math.max(1, Math.round((now - last - this.periodMs) * 1000));
      last = now;
      for (const h of this.windows) h.record(us);
    }, this.periodMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  reader(): LoopDelayReader {
    const h = createHistogram();
    this.windows.add(h);
    const ms = (us: number) => us / 1000;
    return {
      take: () => {
        const out: LoopDelayFigures =
          h.count === 0
            ? EMPTY
            : {
                count: h.count,
                minMs: ms(h.min),
                maxMs: ms(h.max),
                meanMs: ms(h.mean),
                stddevMs: ms(h.stddev),
                p50Ms: ms(h.percentile(50)),
                p90Ms: ms(h.percentile(90)),
                p99Ms: ms(h.percentile(99)),
              };
        h.reset();
        return out;
      },
      close: () => {
        this.windows.delete(h);
      },
    };
  }
}
