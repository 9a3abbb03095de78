/**
 * Fault: the runtime process killed with kill -9 while alarms are in the
 * middle of something: one in its on-delay, one acknowledged and in its
 * off-delay, one acknowledged and shelved for a time.
 * Kept: every deadline (they are absolute and stored, not XState timers) and
 * every acknowledgement: after the restart the on-delay raises once, at or
 * after its stored deadline; the off-delay returns the acknowledged alarm to
 * normal; the shelve expires and announces the condition again. Doubled:
 * nothing (one raise per alarm, one ack each).
 */
import { describe, expect, it } from 'vitest';
import type { AlarmEventEntry } from '../../runtime/redis/alarms.js';
import { eventually, sleep, writeSite } from '../helpers/servers.js';
import { privateRedisSuite } from '../helpers/suite.js';
import { spawnRuntime } from './site.js';

const t = privateRedisSuite();
const dir = writeSite({
  'site.yaml': `models:
  - id: bess
    measurements: { a: {}, b: {}, c: {} }
alarms:
  - { id: bess.on, model: bess, when: { point: a, above: 10, onDelayMs: 1500 } }
  - { id: bess.off, model: bess, when: { point: b, above: 10, offDelayMs: 1500 } }
  - { id: bess.shelf, model: bess, when: { point: c, above: 10 } }
`,
});

const start = () => spawnRuntime(t, dir);

const set = (name: string, value: number) => t.bus.telemetry.modelSet('bess', Date.now(), [{ name, value, quality: 'good' }]);
const state = async (id: string) => (await t.bus.alarms.get(id))?.state;
const eventsOf = async (id: string): Promise<AlarmEventEntry[]> => (await t.bus.alarms.events(1000, undefined, id)).reverse();
const pendingUntil = async (id: string): Promise<number | null> =>
  (JSON.parse((await t.bus.alarms.filters([id]))[0] ?? '{}') as { pendingUntil?: number | null }).pendingUntil ?? null;

describe('fault: the runtime killed with kill -9 in the middle of an on-delay, an off-delay and a shelve', () => {
  it('after the restart each deadline is kept: one raise, the acks kept, the shelve expired, nothing doubled', async () => {
    const first = start();
    await eventually(async () => (await t.raw.hget('actor:alarm/bess', 'status')) === 'running', 20_000);
    await set('b', 20);
    await set('c', 20);
    await eventually(async () => (await state('bess.off')) === 'unacknowledged' && (await state('bess.shelf')) === 'unacknowledged', 5_000);
    const now = () => Date.now();
    await t.bus.alarms.act('bess.off', { type: 'ACK', now: now() }, 'test', 'seen');
    await t.bus.alarms.act('bess.shelf', { type: 'ACK', now: now() }, 'test', 'seen');
    await t.bus.alarms.act('bess.shelf', { type: 'SHELVE', now: now(), durationMs: 1_500 }, 'test', 'work on the pack');
    await set('a', 20);
    await set('b', 0);
    await eventually(async () => (await pendingUntil('bess.on')) !== null && (await pendingUntil('bess.off')) !== null, 5_000);
    const onDeadline = (await pendingUntil('bess.on'))!;
    const offDeadline = (await pendingUntil('bess.off'))!;
    const shelvedUntil = (await t.bus.alarms.get('bess.shelf'))!.context.shelvedUntil!;
    first.kill('SIGKILL');
    await new Promise((r) => first.once('exit', r));
    expect([await state('bess.on'), await state('bess.off'), await state('bess.shelf')]).toEqual(['normal', 'acknowledged', 'shelved']);

    start();
    await eventually(
      async () => (await state('bess.on')) === 'unacknowledged' && (await state('bess.off')) === 'normal' && (await state('bess.shelf')) === 'unacknowledged',
      20_000,
    );
    await sleep(500); // room for a duplicate, were there one
    const on = await eventsOf('bess.on');
    expect(on.map((e) => e.why)).toEqual(['raised']);
    expect(on[0]!.time).toBeGreaterThanOrEqual(onDeadline);
    const off = await eventsOf('bess.off');
    expect(off.map((e) => [e.event, e.to])).toEqual([
      ['CONDITION_ON', 'unacknowledged'],
      ['ACK', 'acknowledged'],
      ['CONDITION_OFF', 'normal'],
    ]);
    expect(off[2]!.time).toBeGreaterThanOrEqual(offDeadline);
    const shelf = await eventsOf('bess.shelf');
    expect(shelf.map((e) => e.why)).toEqual(['raised', 'seen', 'work on the pack', 'shelve expired']);
    expect(shelf[3]!.time).toBeGreaterThanOrEqual(shelvedUntil);
    expect((await t.bus.alarms.get('bess.shelf'))!.state).toBe('unacknowledged');
  }, 60_000);
});
