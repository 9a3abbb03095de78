/**
 * A sequence trigger across a restart of the runtime, against a private
 * redis-server: the first step seen, the runtime stopped and started again,
 * the second step within the window → the rule fires once (and not again after
 * one more restart); the second step only after the window passed while the
 * runtime was down → it does not fire, and the stale progress is dropped at
 * start. The progress lives in `rule:{id}` (field `sequence`), committed by
 * rule_commit with the rule's version.
 */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../runtime/config/load.js';
import { parseSequenceProgress } from '../../runtime/domain/ruleEvaluation.js';
import { startRuntime } from '../../runtime/runtime.js';
import { eventually, quietLog, sleep, writeSite } from '../helpers/servers.js';
import { ruleSite } from '../helpers/ruleSite.js';
import { privateRedisSuite } from '../helpers/suite.js';

const t = privateRedisSuite();

const SITE = `${ruleSite(['Q'])}rules:
  - id: breaker-then-low
    trigger: { sequence: ["grid.Q > 5", "grid.Q < 1"], within: WITHIN }
    then:
      - control: { model: gw, name: export_limit, value: 7, minIntervalMs: 0 }
`;

async function start(within: string): Promise<void> {
  t.running = await startRuntime(loadConfig(writeSite({ 'site.yaml': SITE.replace('WITHIN', within) })), { redisUrl: t.server.url, log: quietLog });
  await eventually(async () => (await t.bus.rules.read('breaker-then-low'))?.state === 'idle');
}

async function stop(): Promise<void> {
  await t.running?.stop();
  t.running = undefined;
}

const setQ = (value: number) => t.bus.telemetry.modelSet('grid', Date.now(), [{ name: 'Q', value, quality: 'good' }]);
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

describe('a sequence trigger across a restart', () => {
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
