/**
 * The `alarm:update` notes reach the alarm actor that holds the alarm, and only
 * it, through one subscription per subscriber connection; the subscription ends
 * with its last user; a restarted actor takes its alarms' notes over.
 */
import { describe, expect, it } from 'vitest';
import { onAlarmNotes, type AlarmNote } from '../../actors/alarm/alarmNotes.js';
import { KEYS } from '../../runtime/redis/keys.js';
import { eventually, usePrivateRedis } from '../helpers/servers.js';

const t = usePrivateRedis();

const note = (id: string, version: number) => JSON.stringify({ id, version, who: 'otto', event: 'ACK' });

describe('alarm notes', () => {
  it('each note goes to the handler of its alarm; one subscription for all; none after the last leaves', async () => {
    const subs = t.bus.subscriber();
    try {
      const a: AlarmNote[] = [];
      const b: AlarmNote[] = [];
      const offA = await onAlarmNotes(subs, ['m1.hot', 'm1.cold'], (n) => a.push(n));
      const offB = await onAlarmNotes(subs, ['m2.hot'], (n) => b.push(n));
      const numsub = async () => Number(((await t.raw.pubsub('NUMSUB', KEYS.alarmUpdate)) as [string, number])[1]);
      expect(await numsub()).toBe(1);
      await t.raw.publish(KEYS.alarmUpdate, note('m1.cold', 3));
      await t.raw.publish(KEYS.alarmUpdate, note('m2.hot', 7));
      await t.raw.publish(KEYS.alarmUpdate, note('m9.none', 1));
      await t.raw.publish(KEYS.alarmUpdate, 'not json');
      await eventually(() => a.length === 1 && b.length === 1);
      expect(a).toEqual([{ id: 'm1.cold', version: 3, who: 'otto' }]);
      expect(b).toEqual([{ id: 'm2.hot', version: 7, who: 'otto' }]);

      // A restarted actor registers again: its notes go to the new handler, and the old one's leaving does not take them away.
      const a2: AlarmNote[] = [];
      const offA2 = await onAlarmNotes(subs, ['m1.hot', 'm1.cold'], (n) => a2.push(n));
      await offA();
      await t.raw.publish(KEYS.alarmUpdate, note('m1.hot', 4));
      await eventually(() => a2.length === 1);
      expect(a).toHaveLength(1);

      await offB();
      expect(await numsub()).toBe(1);
      await offA2();
      await eventually(async () => (await numsub()) === 0);
    } finally {
      await subs.close();
    }
  });
});
