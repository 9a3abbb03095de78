/**
 * Fault: the broker down for a few seconds while a poll every 20 ms fills
 * the link's backlog, then back. The backlog drains at `drainRatePerS` (here
 * 100 entries a second, in reads of 10), measured at a subscriber: about that
 * rate and never much above it, while new polls keep coming (50 a second);
 * once drained the live data flows again, every seq once, in order.
 */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../runtime/config/load.js';
import { startRuntime } from '../../runtime/runtime.js';
import { checkOrder, COUNTER_SITE, dataSeqs } from '../helpers/mqttWatch.js';
import { eventually, quietLog, sleep, writeSite } from '../helpers/servers.js';
import { privateRedisSuite } from '../helpers/suite.js';
import { cloudYaml, killedBroker, linkBacklog } from './cloud.js';

const t = privateRedisSuite();

const RATE = 100;
const BATCH = 10;
const WINDOW_MS = 2_000;

describe('fault: a backlog drained after an outage', () => {
  it(`drains at drainRatePerS (${RATE}/s) while new data keeps coming, then the live data flows again`, async () => {
    const { w, url, back } = await killedBroker(t, 'drain-watcher');
    const site = COUNTER_SITE.replace('pollMs: 40', 'pollMs: 20');
    t.running = await startRuntime(
      loadConfig(writeSite({ 'site.yaml': site, 'cloud.yaml': cloudYaml(url, `      drainRatePerS: ${RATE}\n      batchEntries: ${BATCH}\n`) })),
      { redisUrl: t.server.url, log: quietLog },
    );
    // About 5 s at 50 polls a second: ~250 entries; drained at 100/s while 50/s come, ~5 s to catch up.
    await eventually(async () => ((await linkBacklog(t))?.lag ?? 0) >= 250, 10_000);
    await back();
    await eventually(() => w.got.some((m) => m.topic === 'voltage/site/data/inv'), 5_000);
    const first = w.got.find((m) => m.topic === 'voltage/site/data/inv')!.at;
    // Measured from 1 s after the first message: the watcher's own session may hand over a burst of what the
    // broker queued for it while it reconnected.
    await sleep(1_000 + WINDOW_MS + 200 - (Date.now() - first));
    const from = first + 1_000;
    const inWindow = w.got.filter((m) => m.topic === 'voltage/site/data/inv' && m.at >= from && m.at < from + WINDOW_MS);
    const rate = (inWindow.length * 1_000) / WINDOW_MS;
    // Still the backlog at the window's end: messages of polls well over a second old.
    const last = inWindow[inWindow.length - 1]!;
    const behindMs = last.at - (last.body.ts as number);
    console.log(`drain: ${rate}/s at the subscriber over ${WINDOW_MS} ms (drainRatePerS ${RATE}), the last one ${behindMs} ms behind its poll`);
    expect(behindMs).toBeGreaterThan(1_000);
    // Paced: one read of BATCH ahead at most, and a tolerance for timers; about the rate, not a trickle.
    expect(rate).toBeLessThanOrEqual(RATE * 1.15 + BATCH);
    expect(rate).toBeGreaterThanOrEqual(RATE * 0.7);
    // New data keeps coming and arrives: the link catches up with the polls made during the drain, then stays live.
    await eventually(async () => {
      const g = await linkBacklog(t);
      const newest = w.got.filter((m) => m.topic === 'voltage/site/data/inv').at(-1);
      return g !== undefined && g.lag + g.pending <= 5 && newest !== undefined && Date.now() - (newest.body.ts as number) < 500;
    }, 10_000);
    const live = w.got.filter((m) => m.topic === 'voltage/site/data/inv').length;
    await sleep(500);
    expect(w.got.filter((m) => m.topic === 'voltage/site/data/inv').length).toBeGreaterThan(live + 10);
    expect(checkOrder(dataSeqs(w.got)).unique).toBeGreaterThan(400);
  }, 40_000);
});
