/**
 * Fault: the runtime process killed with kill -9 while its history writer has
 * a batch in flight (a proxy in front of VictoriaMetrics holds the request,
 * so that the write is surely under way when the process dies, and never
 * reaches the database), and down for a second while polls go on being
 * accepted into the outbox.
 * Kept: every value: the batch the dead writer had read and not acknowledged
 * stays pending in its group and is written by the next incarnation, then
 * what came while it was down; each counter value stored exactly once.
 * Lost: nothing.
 */
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { caughtUp, expectCounterStoredOnce, feedCounter, historyGroup, historySite, useHistoryRig } from '../helpers/historyRig.js';
import { eventually, sleep } from '../helpers/servers.js';
import { startTcpProxy } from '../helpers/tcpProxy.js';
import { spawnRuntime } from './site.js';
import { KEYS } from '../../runtime/redis/keys.js';

const rig = useHistoryRig();

describe('fault: the runtime killed with kill -9 while a history write is in flight', () => {
  it('the batch in flight and the polls while it was down are written after the restart: every counter value stored exactly once', async () => {
    const t = { server: rig.redis, cleanups: rig.stops };
    const proxy = await startTcpProxy(rig.vm.port, rig.stops);
    const dir = historySite(`http://127.0.0.1:${proxy.port}`);
    const first = spawnRuntime(t, dir);
    // The group is made at load, before anything polls; from then on the outbox keeps every entry.
    await eventually(async () => (await rig.raw.exists(KEYS.outbox)) === 1 && (await historyGroup(rig.raw, 'vm')) !== undefined, 20_000);
    // 20 points a poll, a poll every 20 ms (the counter is point 1).
    const counter = feedCounter(rig, '9001', 20, 19);
    await eventually(async () => (await historyGroup(rig.raw, 'vm'))?.readAll === true && counter.value >= 50, 10_000);
    proxy.hold();
    // Read and sent, not acknowledged: the write is in flight.
    await eventually(async () => ((await historyGroup(rig.raw, 'vm'))?.pending ?? 0) > 0, 5_000, 10);
    await sleep(200);
    first.kill('SIGKILL');
    await once(first, 'exit');
    proxy.release();
    const pendingAtKill = (await historyGroup(rig.raw, 'vm'))!.pending;
    const atKill = counter.value;
    expect(pendingAtKill).toBeGreaterThan(0);
    await sleep(1_000); // down: the polls go on into the outbox
    spawnRuntime(t, dir);
    await sleep(1_000);
    await counter.stop();
    await caughtUp(rig.raw, rig.vm.url, 'vm');
    console.log(
      `runtime kill -9 mid-write: ${pendingAtKill} entries pending at the kill, ${counter.value - atKill} polls since, ${counter.value} values in all`,
    );
    await expectCounterStoredOnce(rig.vm.url, 'voltage_point_value{channel="9001",type="m",point="1"}', counter.value, counter.started);
  }, 45_000);
});
