/**
 * Fault: the history database (a private VictoriaMetrics) killed with SIGKILL
 * in the middle of a batch, for 13 s, while a counter increments every 100 ms:
 * longer than every timeout involved (the writer's 1 s request timeout, its
 * 100-400 ms backoff, and the 10 s window it writes again, which must not age
 * away during the outage), by a few seconds.
 * Kept: every value, stored exactly once. The batch in flight is not
 * acknowledged and is read again; after the database is back the writer
 * writes its last windowMs again, since VictoriaMetrics 1.79 loses ~5 s it had
 * acknowledged, and deduplication counts each value once. Other polls under a
 * small outbox bound meanwhile make the outbox trim what every group
 * acknowledged: the writer's window is held from that trim (hold:{group}).
 * Lost: nothing.
 */
import { describe, expect, it } from 'vitest';
import { KEYS } from '../../runtime/redis/keys.js';
import { caughtUp, expectCounterStoredOnce, feedCounter, startWriter, useHistoryRig } from '../helpers/historyRig.js';
import { eventually, sleep, wrapper } from '../helpers/servers.js';
import { spawnVictoria } from '../helpers/victoria.js';

const rig = useHistoryRig();

describe('fault: the history database killed with SIGKILL in the middle of a batch', () => {
  it('VictoriaMetrics killed while a counter increments every 100 ms: every value is stored exactly once', async () => {
    // Batches of 4 entries: the window's ~50 entries are written again in a dozen batches, several out at once (writesInFlight).
    const { actor, writer } = await startWriter(rig, 't3', 4);
    const counter = feedCounter(rig, '4001', 100);
    await sleep(3_000);
    await rig.vm.kill();
    await eventually(() => actor.getSnapshot().value === 'backoff', 5_000, 20);
    // Other channels' polls under a small outbox bound (10 kB) meanwhile: past an eighth of it, the
    // outbox is trimmed of what every group acknowledged, which is the window the writer will write
    // again, unless it holds it (hold:{group}); the bound itself is not reached (nothing dropped).
    const small = wrapper(rig.redis, { outboxMaxMB: 0.01 });
    rig.stops.push(() => small.close());
    for (let i = 0; i < 64; i++) await small.telemetry.c2m('4002', Date.now(), [{ type: 'm', id: 1, value: i, quality: null }]);
    expect(await rig.raw.hget(KEYS.outboxStats, 'hold:history:t3')).toMatch(/^\d+-\d+$/);
    // Down past the longest of them, windowMs (10 s): the window is pruned only on success.
    await sleep(13_000);
    rig.vm = await spawnVictoria({ port: rig.vm.port, dataDir: rig.vm.dataDir });
    await sleep(2_000);
    await counter.stop();
    await caughtUp(rig.raw, rig.vm.url, 't3');
    expect(actor.getSnapshot().context.rewrites).toBeGreaterThanOrEqual(1);
    // A new process answers (another start second in its /metrics): the window is written again, not skipped.
    expect(writer.rewrites.written).toBeGreaterThanOrEqual(1);
    console.log(`database killed: ${counter.value} values, ${actor.getSnapshot().context.rewrites} rewrites of the window`);
    await expectCounterStoredOnce(
      rig.vm.url,
      'voltage_point_value{channel="4001",type="m",point="1"}',
      counter.value,
      counter.started,
      JSON.stringify(actor.getSnapshot().context),
    );
  }, 60_000);
});
