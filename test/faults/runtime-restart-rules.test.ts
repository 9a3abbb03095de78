/**
 * Fault: the runtime stopped and started again while rules are in the middle
 * of something, against a private redis-server. Rules keep their state in
 * `rule:{id}`, committed by rule_commit with the rule's version: the state, a
 * running `for`'s absolute deadline, a sequence's progress.
 * Kept: a running `for` (still holding after the start, with the same
 * deadline; active at it, once); an active rule (not fired again by another
 * restart); a sequence's first step (the second within the window fires once,
 * and not again after one more restart). A second step after the window
 * passed while the runtime was down does not fire, and the stale progress is
 * dropped at start. Doubled: nothing (one fire each). The same faults with
 * kill -9: runtime-kill9-rules.test.ts.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../runtime/config/load.js';
import { parseSequenceProgress } from '../../runtime/domain/ruleEvaluation.js';
import { startRuntime } from '../../runtime/runtime.js';
import { eventually, quietLog, sleep, writeSite } from '../helpers/servers.js';
import { ruleSite, SEQUENCE_SITE, setGrid, ZERO_EXPORT } from '../helpers/ruleSite.js';
import { privateRedisSuite } from '../helpers/suite.js';

const t = privateRedisSuite();

async function startSite(files: Record<string, string>): Promise<void> {
  t.running = await startRuntime(loadConfig(writeSite(files)), { redisUrl: t.server.url, log: quietLog });
}

async function start(within: string): Promise<void> {
  await startSite({ 'site.yaml': SEQUENCE_SITE.replace('WITHIN', within) });
  await eventually(async () => (await t.bus.rules.read('breaker-then-low'))?.state === 'idle');
}

const startZeroExport = () => startSite({ 'site.yaml': ruleSite(['P']), 'rules.yaml': ZERO_EXPORT.replace('FOR', '2500ms') });

async function stop(): Promise<void> {
  await t.running?.stop();
  t.running = undefined;
}

const ruleState = async (id: string) => (await t.bus.rules.read(id))?.state;
const gridP = (value: number) => setGrid(t.bus, 'P', value);
const setQ = (value: number) => setGrid(t.bus, 'Q', value);
const progress = async () => parseSequenceProgress((await t.bus.rules.read('breaker-then-low'))?.sequence);
const fires = async () => (await t.bus.rules.read('breaker-then-low'))?.stats.fires ?? 0;
const limit = () => t.raw.hget('comsrv:v1:a', '1');

/** Runs the first step of the sequence and waits until its progress is committed. */
async function firstStep(): Promise<number> {
  await setQ(0);
  await setQ(9);
  const p = await eventually(async () => {
    const q = await progress();
    return q?.stage === 1 ? q : undefined;
  }, 3_000);
  return p.startedAt;
}

describe('fault: the runtime restarted mid-`for` and mid-sequence', () => {
  it('`for` holds across a restart of the runtime, and an active rule does not fire again', async () => {
    await startZeroExport();
    await eventually(async () => (await ruleState('zero-export')) === 'idle');
    await gridP(-5);
    const holding = await eventually(async () => {
      const r = await t.bus.rules.read('zero-export');
      return r?.state === 'holding' ? r : undefined;
    }, 3_000);
    const holdUntil = holding.context.holdUntil!;
    await stop();
    // `voltage rules` reads the committed state while the runtime is down.
    const cli = await promisify(execFile)(process.execPath, ['runtime/bin/voltage.js', 'rules'], { env: { ...process.env, REDIS_URL: t.server.url } });
    expect(cli.stdout).toMatch(/^zero-export +holding +p=10 when grid\.P < -2 fires in \d+ ms/m);
    await startZeroExport();
    // Still holding with the same deadline (not started again), then active at that deadline.
    expect((await t.bus.rules.read('zero-export'))!.context.holdUntil).toBe(holdUntil);
    await eventually(async () => (await ruleState('zero-export')) === 'active', 5_000);
    expect(Date.now()).toBeGreaterThanOrEqual(holdUntil);
    expect(Date.now() - holdUntil).toBeLessThan(1_000);
    await stop();
    await startZeroExport();
    await sleep(500);
    const after = (await t.bus.rules.read('zero-export'))!;
    expect(after.state).toBe('active');
    expect(after.stats.fires).toBe(1);
  });

  it('the first step before the restart, the second within the window after it: fires once', async () => {
    await start('10s');
    const startedAt = await firstStep();
    await stop();
    await start('10s');
    // Resumed, not restarted: the same first step, the same window.
    expect(await progress()).toMatchObject({ stage: 1, startedAt });
    await setQ(0);
    await eventually(async () => (await limit()) === '7.000000', 5_000);
    expect(await fires()).toBe(1);
    // Completed in the same commit as the fire: nothing under way any more, and a restart does not fire it again.
    expect((await progress())?.stage ?? 0).toBe(0);
    await stop();
    await start('10s');
    await setQ(0);
    await sleep(500);
    expect(await fires()).toBe(1);
  });

  it('the second step after the window passed while the runtime was down: does not fire, the progress is dropped', async () => {
    await start('1s');
    await firstStep();
    await stop();
    await sleep(1_300);
    await start('1s');
    await eventually(async () => ((await progress())?.stage ?? 0) === 0, 3_000);
    await setQ(0);
    await sleep(700);
    expect(await fires()).toBe(0);
    expect(await limit()).not.toBe('7.000000');
  });
});
