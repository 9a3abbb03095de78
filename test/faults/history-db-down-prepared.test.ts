/**
 * Fault: the history database (a private VictoriaMetrics) down for seconds
 * while a counter increments: the writer reads the backlog on through its
 * group meanwhile and encodes and gzips it into held batches (prepareMaxBytes),
 * unacknowledged, and sends them first, in order, once the database is back.
 * Kept: every value, stored exactly once: with room for the whole backlog,
 * with a bound that stops the reading after one batch (the rest waits in the
 * outbox), and with the runtime killed with kill -9 during the outage (the
 * held entries are pending in its group, written by the next incarnation).
 * Lost: nothing.
 */
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { caughtUp, expectCounterStoredOnce, feedCounter, historyGroup, historySite, startWriter, useHistoryRig } from '../helpers/historyRig.js';
import { eventually, sleep } from '../helpers/servers.js';
import { spawnVictoria } from '../helpers/victoria.js';
import { spawnRuntime } from './site.js';

const rig = useHistoryRig();

describe('fault: the history database down, the backlog prepared meanwhile', () => {
  it('down 6 s while a counter increments every 100 ms: the backlog is read and encoded while it is down, then every value is stored exactly once', async () => {
    const { actor, writer } = await startWriter(rig, 'p1', 4);
    const counter = feedCounter(rig, '4101', 100);
    await sleep(2_000);
    await rig.vm.kill();
    await eventually(() => actor.getSnapshot().value === 'backoff', 5_000, 20);
    await sleep(6_000);
    // Read through the group and held, not acknowledged: the group has read everything, ~60 entries are pending.
    const group = (await historyGroup(rig.raw, 'p1'))!;
    expect(group.readAll).toBe(true);
    expect(group.pending).toBeGreaterThan(40);
    expect(writer.prepared.entries).toBeGreaterThan(40);
    rig.vm = await spawnVictoria({ port: rig.vm.port, dataDir: rig.vm.dataDir });
    await sleep(1_000);
    await counter.stop();
    await caughtUp(rig.raw, rig.vm.url, 'p1');
    console.log(`prepared while down: ${writer.prepared.batches} batches, ${writer.prepared.entries} entries; ${counter.value} values`);
    await expectCounterStoredOnce(
      rig.vm.url,
      'voltage_point_value{channel="4101",type="m",point="1"}',
      counter.value,
      counter.started,
      JSON.stringify(actor.getSnapshot().context),
    );
  }, 60_000);

  it('the bound reached after one batch: reading stops, the rest waits in the outbox, and every value is stored exactly once', async () => {
    const { actor, writer } = await startWriter(rig, 'p2', 4, { prepareMaxBytes: 1 });
    const counter = feedCounter(rig, '4102', 100);
    await sleep(2_000);
    await rig.vm.kill();
    await eventually(() => actor.getSnapshot().value === 'backoff', 5_000, 20);
    await sleep(4_000);
    // One batch of at most 4 entries held (and the batches refused by the kill); the rest is unread.
    expect(writer.prepared.batches).toBeLessThanOrEqual(1);
    expect(writer.prepared.entries).toBeLessThanOrEqual(4);
    const group = (await historyGroup(rig.raw, 'p2'))!;
    expect(group.readAll).toBe(false);
    expect(group.pending).toBeLessThanOrEqual(4 * 4);
    rig.vm = await spawnVictoria({ port: rig.vm.port, dataDir: rig.vm.dataDir });
    await sleep(1_000);
    await counter.stop();
    await caughtUp(rig.raw, rig.vm.url, 'p2');
    await expectCounterStoredOnce(
      rig.vm.url,
      'voltage_point_value{channel="4102",type="m",point="1"}',
      counter.value,
      counter.started,
      JSON.stringify(actor.getSnapshot().context),
    );
  }, 60_000);

  it('the runtime killed with kill -9 while it holds the prepared backlog: the next incarnation writes it, every value stored exactly once', async () => {
    const t = { server: rig.redis, cleanups: rig.stops };
    const dir = historySite(rig.vm.url);
    const first = spawnRuntime(t, dir);
    await eventually(async () => (await historyGroup(rig.raw, 'vm')) !== undefined, 20_000);
    // 20 points a poll, a poll every 20 ms (the counter is point 1).
    const counter = feedCounter(rig, '9101', 20, 19);
    await eventually(async () => (await historyGroup(rig.raw, 'vm'))?.readAll === true && counter.value >= 50, 10_000);
    // Frozen (SIGSTOP), not killed: a database killed too would lose what it acknowledged in its last seconds, which only the
    // dead writer's window knew (two faults at once; the next incarnation has no window).
    rig.vm.process.kill('SIGSTOP');
    rig.stops.unshift(() => rig.vm.process.kill('SIGCONT'));
    // The writer's write times out (5 s), it backs off and reads on: everything read, hundreds of entries pending (held).
    await eventually(async () => ((await historyGroup(rig.raw, 'vm'))?.pending ?? 0) > 100, 15_000, 50);
    await sleep(1_000);
    const group = (await historyGroup(rig.raw, 'vm'))!;
    expect(group.pending).toBeGreaterThan(100);
    first.kill('SIGKILL');
    await once(first, 'exit');
    const atKill = counter.value;
    rig.vm.process.kill('SIGCONT');
    await sleep(1_000); // down: the polls go on into the outbox
    spawnRuntime(t, dir);
    await sleep(1_000);
    await counter.stop();
    await caughtUp(rig.raw, rig.vm.url, 'vm');
    console.log(
      `runtime kill -9 while holding the prepared backlog: ${group.pending} entries pending at the kill, ${counter.value - atKill} polls since, ${counter.value} values`,
    );
    await expectCounterStoredOnce(rig.vm.url, 'voltage_point_value{channel="9101",type="m",point="1"}', counter.value, counter.started);
  }, 90_000);
});
