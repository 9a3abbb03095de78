/**
 * Fault: Redis (appendonly yes, appendfsync always) killed with kill -9 while
 * the history writer has a batch in flight (a proxy in front of
 * VictoriaMetrics holds it until the kill, then lets it through: the database
 * takes it, the acknowledgement cannot follow), and restarted 1 s later on
 * the same port and folder; `voltage start` runs the writer.
 * Kept: the outbox, the writer's group and its pending entries, straight from
 * the AOF; the writer reads the pending batch again and writes it again
 * (deduplication counts it once), then the rest: every counter value that
 * c2m accepted stored exactly once. Lost: nothing accepted (the feed is
 * paused across the outage: what Redis did not take was never accepted).
 */
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { caughtUp, expectCounterStoredOnce, feedCounter, historyGroup, historySite, useHistoryRig } from '../helpers/historyRig.js';
import { eventually, sleep, spawnRedis } from '../helpers/servers.js';
import { startTcpProxy } from '../helpers/tcpProxy.js';
import { spawnRuntime } from './site.js';
import { KEYS } from '../../runtime/redis/keys.js';

const aofDir = mkdtempSync(join(tmpdir(), 'voltage-aof-'));
const rig = useHistoryRig(64, { aofDir });
afterAll(() => rmSync(aofDir, { recursive: true, force: true }));

describe('fault: Redis restarted with AOF under the history writer', () => {
  it('the pending batch and the backlog come back from the AOF and are written: every counter value stored exactly once', async () => {
    const proxy = await startTcpProxy(rig.vm.port, rig.stops);
    spawnRuntime({ server: rig.redis, cleanups: rig.stops }, historySite(`http://127.0.0.1:${proxy.port}`));
    await eventually(async () => (await historyGroup(rig.raw, 'vm')) !== undefined, 20_000);
    const counter = feedCounter(rig, '9001', 20, 19);
    await eventually(async () => (await historyGroup(rig.raw, 'vm'))?.readAll === true && counter.value >= 50, 10_000);
    proxy.hold();
    await eventually(async () => ((await historyGroup(rig.raw, 'vm'))?.pending ?? 0) > 0, 5_000, 10);
    const pendingAtKill = (await historyGroup(rig.raw, 'vm'))!.pending;
    await counter.pause(); // no c2m left half-answered by the kill
    const entries = await rig.raw.xlen(KEYS.outbox);
    rig.redis.process.kill('SIGKILL');
    await once(rig.redis.process, 'exit');
    proxy.release();
    await sleep(1_000);
    rig.redis = await spawnRedis({ aofDir, port: rig.redis.port });
    // Straight from the AOF: every entry, and the group (with what it had read and not acknowledged).
    expect(await rig.raw.xlen(KEYS.outbox)).toBe(entries);
    expect(await historyGroup(rig.raw, 'vm')).toBeDefined();
    counter.resume();
    await sleep(1_000);
    await counter.stop();
    await caughtUp(rig.raw, rig.vm.url, 'vm');
    console.log(`Redis restarted with AOF: ${entries} entries, ${pendingAtKill} pending at the kill, ${counter.value} values in all`);
    expect(pendingAtKill).toBeGreaterThan(0);
    await expectCounterStoredOnce(rig.vm.url, 'voltage_point_value{channel="9001",type="m",point="1"}', counter.value, counter.started);
  }, 45_000);
});
