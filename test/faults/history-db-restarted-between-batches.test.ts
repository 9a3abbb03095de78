/**
 * Fault: the history database (a private VictoriaMetrics) killed with SIGKILL
 * and restarted on its data directory between two batches, so quickly that no
 * write fails: the counter (a poll every 100 ms) is paused once everything was
 * written, the database is killed and restarted within a fraction of a
 * second, and the counter resumes. VictoriaMetrics 1.79 loses the ~5 s it had
 * acknowledged and not yet flushed, which the writer holds in its window.
 * Kept: every value, stored exactly once. The writer reads the database's
 * process beside the writes every 2 s (HistoryWriter's DB_CHECK_MS), finds
 * another one and writes its window again, with no failure counted.
 * Lost: nothing (without the check, the values of the ~5 s before the kill).
 */
import { describe, expect, it } from 'vitest';
import { caughtUp, expectCounterStoredOnce, feedCounter, startWriter, useHistoryRig } from '../helpers/historyRig.js';
import { eventually, sleep } from '../helpers/servers.js';
import { spawnVictoria } from '../helpers/victoria.js';

const rig = useHistoryRig();

describe('fault: the history database restarted between two batches, no write failing', () => {
  it('VictoriaMetrics killed and restarted while the writer is idle: the window is written again, every value stored exactly once', async () => {
    const { actor, writer } = await startWriter(rig, 't5', 4);
    const counter = feedCounter(rig, '5001', 100);
    await sleep(3_000);
    // Everything written (and acknowledged by the database) before the kill: nothing is in flight, no batch can fail.
    await counter.pause();
    await caughtUp(rig.raw, rig.vm.url, 't5');
    const before = counter.value;
    // force_flush (in caughtUp) makes what was accepted searchable, not durable: the kill still loses it.
    await rig.vm.kill();
    rig.vm = await spawnVictoria({ port: rig.vm.port, dataDir: rig.vm.dataDir });
    counter.resume();
    // Past the next check (every 2 s, a check during the restart confirms nothing) and the rewrite.
    await eventually(() => writer.rewrites.written >= 1, 5_000, 20);
    await sleep(500);
    await counter.stop();
    await caughtUp(rig.raw, rig.vm.url, 't5');
    const ctx = actor.getSnapshot().context;
    console.log(`database restarted between batches: ${before} values before the kill, ${counter.value} in all, ${ctx.rewrites} rewrites`);
    expect(ctx).toMatchObject({ failures: 0, rewrites: 1 });
    expect(writer.rewrites.written).toBe(1);
    await expectCounterStoredOnce(rig.vm.url, 'voltage_point_value{channel="5001",type="m",point="1"}', counter.value, counter.started, JSON.stringify(ctx));
  }, 30_000);
});
