/**
 * Fault: the runtime process killed with kill -9 in the middle of a drain
 * (the broker back after an outage, most of the link's backlog still to send;
 * the drain paced at 50 entries/s against 25 new ones a second).
 * Kept: every message, in order, seq without gaps: the next incarnation sends
 * the entries the dead one had published and not acknowledged first, with
 * their seqs, then the rest. Duplicates (what was published and not XACKed
 * when the process died) are allowed, and counted. Lost: nothing.
 */
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { COUNTER_SITE, checkOrder, dataSeqs } from '../helpers/mqttWatch.js';
import { eventually, writeSite } from '../helpers/servers.js';
import { privateRedisSuite } from '../helpers/suite.js';
import { cloudYaml, heldSeqs, killedBroker, linkBacklog } from './cloud.js';
import { spawnRuntime } from './site.js';

const t = privateRedisSuite();
const backlog = () => linkBacklog(t);

describe('fault: the runtime killed with kill -9 in the middle of a cloud link drain', () => {
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
});
