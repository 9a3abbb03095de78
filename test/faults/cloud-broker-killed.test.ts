/**
 * Fault: the cloud link's MQTT broker (a private mosquitto that saves what it
 * accepted every second) killed with SIGKILL for 3 s while the link publishes
 * a counter every 40 ms, then restarted on the same port and folder.
 * Kept: every message, in order, seq without gaps, up to the last seq the
 * link gave: the broker is up at the stop, so the graceful stop waits for the
 * PUBACKs and leaves nothing pending. Duplicates are allowed, and counted: at most
 * what was in flight at the kill and what the broker resends from its last
 * save. Lost: nothing.
 */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../runtime/config/load.js';
import { startRuntime } from '../../runtime/runtime.js';
import { spawnMosquitto } from '../helpers/mosquitto.js';
import { COUNTER_SITE, checkOrder, dataSeqs, watchBroker } from '../helpers/mqttWatch.js';
import { eventually, quietLog, sleep, writeSite } from '../helpers/servers.js';
import { privateRedisSuite } from '../helpers/suite.js';
import { cloudYaml, expectNothingPending, heldSeqs } from './cloud.js';

const t = privateRedisSuite();

describe("fault: the cloud link's broker killed with SIGKILL", () => {
  it('the broker killed with SIGKILL for a few seconds, restarted on the same port: every message arrives, in order, seq without gaps', async () => {
    const b = await spawnMosquitto();
    t.cleanups.push(() => b.stop());
    const w = await watchBroker(t.cleanups, b.url, 'voltage/site/data/#', 'durable-watcher');
    t.running = await startRuntime(loadConfig(writeSite({ 'site.yaml': COUNTER_SITE, 'cloud.yaml': cloudYaml(b.url) })), {
      redisUrl: t.server.url,
      log: quietLog,
    });
    await eventually(() => dataSeqs(w.got).length >= 10);
    const beforeSave = dataSeqs(w.got).length;
    await sleep(1_500); // the watcher's session is saved (autosave every second)
    await b.kill();
    const before = dataSeqs(w.got).length;
    // Published and not PUBACKed when the broker died: the link sends them again (their seqs were recorded before the publish).
    const inflightAtKill = await heldSeqs(t.raw);
    await sleep(3_000);
    const seqAtRestart = Number(await t.raw.get('cloud:main:seq'));
    const b2 = await spawnMosquitto({ port: b.port, dir: b.dir });
    t.cleanups.push(() => b2.stop());
    await eventually(() => dataSeqs(w.got).length > before + 60, 20_000);
    await t.running.stop();
    t.running = undefined;
    const lastSeq = Number(await t.raw.get('cloud:main:seq'));
    expect(lastSeq).toBeGreaterThan(seqAtRestart);
    // The broker is up at the stop: everything the link published was PUBACKed and acknowledged before it said
    // goodbye (no seq held for a next start, no entry pending in its group), and the watcher got all of it.
    await expectNothingPending(t);
    await eventually(() => Math.max(...dataSeqs(w.got)) >= lastSeq, 5_000);
    const { unique, duplicates } = checkOrder(dataSeqs(w.got));
    expect(unique).toBe(lastSeq);
    // Duplicates are allowed, and counted: at most what the link had in flight (a PUBACK lost with the broker), and
    // what the broker resends to the watcher's session from its last save (the messages of the last 1.5 s at most).
    console.log(
      `broker killed: ${unique} messages, ${duplicates} duplicates, ${inflightAtKill} in flight at the kill, ${before - beforeSave} in the last 1.5 s`,
    );
    expect(duplicates).toBeLessThanOrEqual(inflightAtKill + (before - beforeSave));
  }, 45_000);
});
