/**
 * Fault: the history database frozen (SIGSTOP) for 4 s, then let go
 * (SIGCONT), while a counter increments every 100 ms: a timeout or a network
 * outage with the same process behind it. The writes time out (the writer's
 * 1 s request timeout) and are retried with backoff; VictoriaMetrics kept what
 * it had accepted, so once it answers again the writer does not write its
 * recent window again (the same start second in its /metrics) and drains at
 * once. A restart still writes the window again (history-db-killed.test.ts).
 * Kept: every value, stored exactly once. Lost: nothing.
 */
import { describe, expect, it } from 'vitest';
import { caughtUp, expectCounterStoredOnce, feedCounter, startWriter, useHistoryRig } from '../helpers/historyRig.js';
import { eventually, sleep } from '../helpers/servers.js';

const rig = useHistoryRig();

describe('fault: the history database frozen for a few seconds, not restarted', () => {
  it('VictoriaMetrics stopped with SIGSTOP for 4 s: the window is not written again, and every value is stored exactly once', async () => {
    // The writer tells a restart from the start second only for a process it saw up for 2 s at least.
    await sleep(2_500);
    const { actor, writer } = await startWriter(rig, 't5', 4);
    const counter = feedCounter(rig, '5001', 100);
    await sleep(2_000);
    rig.vm.process.kill('SIGSTOP');
    try {
      await eventually(() => actor.getSnapshot().value === 'backoff', 5_000, 20);
      await sleep(3_000);
    } finally {
      rig.vm.process.kill('SIGCONT');
    }
    await sleep(2_000);
    await counter.stop();
    await caughtUp(rig.raw, rig.vm.url, 't5');
    // Each reconnection after a failure came to the rewrite, and each found the same process: none written again.
    const context = actor.getSnapshot().context as { failures: number; rewrites: number };
    expect(context.failures).toBeGreaterThanOrEqual(1);
    expect(context.rewrites).toBeGreaterThanOrEqual(1);
    expect(writer.rewrites).toEqual({ written: 0, skipped: context.rewrites });
    await expectCounterStoredOnce(
      rig.vm.url,
      'voltage_point_value{channel="5001",type="m",point="1"}',
      counter.value,
      counter.started,
      JSON.stringify(actor.getSnapshot().context),
    );
  }, 60_000);
});
