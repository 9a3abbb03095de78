/**
 * Fault: the runtime process killed with kill -9 while rules are in the
 * middle of something: a `for` running, a rule active, a sequence's first
 * step seen. Rules commit their state, a `for`'s absolute deadline and a
 * sequence's progress in `rule:{id}` with rule_commit, and a fire's commands
 * in the same call, so a kill falls before a step or after it, never inside.
 * Kept: the running `for` (its deadline: active at it, once, one command);
 * the active rule (not fired again after one more kill, no second command);
 * the sequence's first step (the second within the window fires once, one
 * command, not again after one more kill). Doubled: nothing.
 */
import { once } from 'node:events';
import type { ChildProcess } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { parseSequenceProgress } from '../../runtime/domain/ruleEvaluation.js';
import { ruleSite, SEQUENCE_SITE, setGrid, ZERO_EXPORT } from '../helpers/ruleSite.js';
import { eventually, sleep, writeSite } from '../helpers/servers.js';
import { privateRedisSuite } from '../helpers/suite.js';
import { spawnRuntime } from './site.js';

const t = privateRedisSuite();

const rule = (id: string) => t.bus.rules.read(id);
/** The commands sent to the device: every rule control is appended to the channel's command stream once (and deleted there when it ends). */
const commands = async () => {
  const info = (await t.raw.xinfo('STREAM', 'cmd:v1')) as unknown[];
  return Number(info[info.indexOf('entries-added') + 1]);
};

/** `voltage start` in a process of its own, once this incarnation has started the rule's actor (a killed one's record says running too). */
async function startRule(dir: string, id: string): Promise<ChildProcess> {
  const since = Date.now();
  const proc = spawnRuntime(t, dir);
  await eventually(async () => Number(await t.raw.hget(`actor:rule/${id}`, 'startedAt')) >= since, 20_000);
  return proc;
}

async function kill(proc: ChildProcess): Promise<void> {
  proc.kill('SIGKILL');
  await once(proc, 'exit');
}

describe('fault: the runtime killed with kill -9 mid-`for`, while a rule is active, and mid-sequence', () => {
  it('the `for` fires at its stored deadline, once; the active rule is not fired again', async () => {
    const dir = writeSite({ 'site.yaml': ruleSite(['P']), 'rules.yaml': ZERO_EXPORT.replace('FOR', '2s') });
    const first = await startRule(dir, 'zero-export');
    await eventually(async () => (await rule('zero-export'))?.state === 'idle');
    await setGrid(t.bus, 'P', -5);
    const holdUntil = await eventually(async () => (await rule('zero-export'))?.context.holdUntil ?? undefined, 3_000);
    await kill(first);
    expect((await rule('zero-export'))?.state).toBe('holding');
    const second = await startRule(dir, 'zero-export');
    // Resumed, not started again: the same deadline, active at it.
    expect((await rule('zero-export'))!.context.holdUntil).toBe(holdUntil);
    await eventually(async () => (await rule('zero-export'))?.state === 'active', 5_000);
    expect(Date.now()).toBeGreaterThanOrEqual(holdUntil);
    await eventually(async () => (await t.raw.hget('comsrv:v1:a', '1')) === '45.000000', 5_000);
    expect([(await rule('zero-export'))!.stats.fires, await commands()]).toEqual([1, 1]);
    // Killed while active, the condition still holding: the next incarnation knows it fired.
    await kill(second);
    await startRule(dir, 'zero-export');
    await sleep(1_000); // room for a second fire, were there one
    expect((await rule('zero-export'))!.state).toBe('active');
    expect([(await rule('zero-export'))!.stats.fires, await commands()]).toEqual([1, 1]);
  }, 45_000);

  it('the sequence resumes from its first step, fires once within the window, not again', async () => {
    const dir = writeSite({ 'site.yaml': SEQUENCE_SITE.replace('WITHIN', '10s') });
    const progress = async () => parseSequenceProgress((await rule('breaker-then-low'))?.sequence);
    const first = await startRule(dir, 'breaker-then-low');
    await eventually(async () => (await rule('breaker-then-low'))?.state === 'idle');
    await setGrid(t.bus, 'Q', 0);
    await setGrid(t.bus, 'Q', 9);
    const step = await eventually(async () => {
      const p = await progress();
      return p?.stage === 1 ? p : undefined;
    }, 3_000);
    await kill(first);
    const second = await startRule(dir, 'breaker-then-low');
    expect(await progress()).toMatchObject({ stage: 1, startedAt: step.startedAt });
    // The second step, sent again until the new actor has it (a value before it subscribed is not an event to it).
    await eventually(
      async () => {
        await setGrid(t.bus, 'Q', 0);
        return (await t.raw.hget('comsrv:v1:a', '1')) === '7.000000';
      },
      5_000,
      200,
    );
    expect([(await rule('breaker-then-low'))!.stats.fires, await commands()]).toEqual([1, 1]);
    await kill(second);
    await startRule(dir, 'breaker-then-low');
    await setGrid(t.bus, 'Q', 0);
    await sleep(1_000);
    expect([(await rule('breaker-then-low'))!.stats.fires, await commands()]).toEqual([1, 1]);
    expect((await progress())?.stage ?? 0).toBe(0);
  }, 45_000);
});
