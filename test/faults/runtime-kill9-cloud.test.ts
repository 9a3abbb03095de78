/**
 * Fault: the runtime process killed with kill -9 under a cloud link: in the
 * middle of a drain (the broker back after an outage, most of the link's
 * backlog still to send; the drain paced at 50 entries/s against 25 new ones
 * a second), and with a deadband set.
 * Kept: every message, in order, seq without gaps: the next incarnation sends
 * the entries the dead one had published and not acknowledged first, with
 * their seqs, then the rest. Duplicates (what was published and not XACKed
 * when the process died) are allowed, counted, and at most the seqs in flight
 * at the kill. The deadband's references as of the last XACK: no value within
 * the band sent after the restart, none outside it lost, and a message sent
 * again is the same message. Lost: nothing.
 */
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { spawnMosquitto } from '../helpers/mosquitto.js';
import { COUNTER_SITE, checkOrder, dataSeqs, watchBroker, type Received } from '../helpers/mqttWatch.js';
import { eventually, writeSite } from '../helpers/servers.js';
import { privateRedisSuite } from '../helpers/suite.js';
import { cloudYaml, heldSeqs, killedBroker, linkBacklog } from './cloud.js';
import { spawnRuntime } from './site.js';

const t = privateRedisSuite();
const backlog = () => linkBacklog(t);

describe('fault: the runtime killed with kill -9 under a cloud link', () => {
  it('the runtime killed with kill -9 in the middle of a drain: after the restart every message arrives, in order, seq without gaps', async () => {
    const { w, url, back } = await killedBroker(t, 'kill9-watcher');
    // The drain is paced at 50 entries/s against 25 new ones a second.
    const dir = writeSite({ 'site.yaml': COUNTER_SITE, 'cloud.yaml': cloudYaml(url, '      drainRatePerS: 50\n      batchEntries: 10\n') });
    const first = spawnRuntime(t, dir);
    await eventually(async () => ((await backlog())?.lag ?? 0) >= 60, 15_000);
    await back();
    // Draining: some messages arrived, most of the backlog is still to send.
    await eventually(() => dataSeqs(w.got).length >= 15, 10_000);
    const mid = await backlog();
    first.kill('SIGKILL');
    await once(first, 'exit');
    const atKill = dataSeqs(w.got).length;
    // What the dead process had taken and not acknowledged: its seqs, recorded before the publish, in cloud:main:inflight.
    const inflightAtKill = await heldSeqs(t.raw);
    expect(mid!.lag + mid!.pending).toBeGreaterThan(20);
    const second = spawnRuntime(t, dir);
    await eventually(async () => {
      const g = await backlog();
      return g !== undefined && g.lag === 0 && g.pending === 0 && dataSeqs(w.got).length > atKill + 40;
    }, 15_000);
    second.kill('SIGTERM');
    await once(second, 'exit');
    const lastSeq = Number(await t.raw.get('cloud:main:seq'));
    await eventually(() => Math.max(...dataSeqs(w.got)) >= lastSeq, 5_000);
    const { unique, duplicates } = checkOrder(dataSeqs(w.got));
    expect(unique).toBe(lastSeq);
    // Duplicates (what was published and not XACKed when the process died) are allowed, counted, and at most what was in flight.
    console.log(
      `kill -9 mid-drain: ${unique} messages, ${duplicates} duplicates, ${inflightAtKill} in flight and ${mid!.lag + mid!.pending} in the backlog at the kill`,
    );
    expect(duplicates).toBeLessThanOrEqual(inflightAtKill);
    expect(await t.raw.hlen('cloud:main:inflight')).toBe(0);
  }, 45_000);

  it('the deadband state across the runtime killed with kill -9: no value inside the band sent, no change lost, a resent message the same as the first time', async () => {
    const b = await spawnMosquitto();
    t.cleanups.push(() => b.stop());
    const w = await watchBroker(t.cleanups, b.url, 'voltage/site/data/#', 'deadband-watcher');
    // A sine: it keeps its phase across the restart (time-based), so the last value published before the kill is the reference after it.
    const site = COUNTER_SITE.replace('{ kind: counter, start: 1, step: 1 }', '{ kind: sine, amplitude: 100, periodMs: 4000 }');
    const dir = writeSite({ 'site.yaml': site, 'cloud.yaml': cloudYaml(b.url, '      deadband: 20\n      batchEntries: 5\n') });
    const first = spawnRuntime(t, dir);
    await eventually(() => w.got.length >= 12, 20_000);
    first.kill('SIGKILL');
    await once(first, 'exit');
    const atKill = w.got.length;
    const refAtKill = (await t.raw.hgetall('cloud:main:last'))['m/inv/P'];
    const second = spawnRuntime(t, dir);
    await eventually(() => w.got.length >= atKill + 12, 20_000);
    second.kill('SIGTERM');
    await once(second, 'exit');
    const lastSeq = Number(await t.raw.get('cloud:main:seq'));
    await eventually(() => Math.max(...dataSeqs(w.got)) >= lastSeq, 5_000);
    const bySeq = new Map<number, Received>();
    for (const m of w.got) {
      const seen = bySeq.get(m.body.seq as number);
      // A message sent again after the kill is built from the same state: the same message.
      if (seen) expect(m.body).toEqual(seen.body);
      else bySeq.set(m.body.seq as number, m);
    }
    expect(checkOrder(dataSeqs(w.got)).unique).toBe(lastSeq);
    const values = [...bySeq.keys()].sort((x, y) => x - y).map((s) => (bySeq.get(s)!.body.values as { P: number }).P);
    // Across the kill too, each value sent moved more than the band from the one before it.
    for (let i = 1; i < values.length; i++) expect(Math.abs(values[i]! - values[i - 1]!)).toBeGreaterThan(20);
    expect(refAtKill).toMatch(/ good$/);
    expect(await t.raw.hlen('cloud:main:inflight')).toBe(0);
  }, 60_000);
});
