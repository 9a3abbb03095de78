/**
 * The shared subscriber connection: a SUBSCRIBE that Redis refuses is not
 * remembered as done. Refused here by an ACL user without channel access
 * (NOPERM) on a private redis-server; once the user may subscribe, the next
 * handler for that channel subscribes again and receives what is published.
 * A handler that joined a SUBSCRIBE in flight which was then refused does not
 * inherit that refusal: it tries once itself (and only once).
 */
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { Subscriptions } from '../../runtime/redis/subscriptions.js';
import { eventually, quietLog, usePrivateRedis } from '../helpers/servers.js';

const t = usePrivateRedis();

describe('Subscriptions', () => {
  it('a refused SUBSCRIBE is forgotten: the next handler for the channel subscribes and hears it', async () => {
    await t.raw.call('ACL', 'SETUSER', 'sub', 'on', '>pw', '~*', '+@all', 'resetchannels');
    const conn = new Redis({ host: '127.0.0.1', port: t.server.port, username: 'sub', password: 'pw', lazyConnect: false });
    const subs = new Subscriptions(conn, quietLog);
    try {
      const heard: string[] = [];
      await expect(subs.on('news', (m) => heard.push(`first ${m}`))).rejects.toThrow(/NOPERM|permission/i);
      await t.raw.call('ACL', 'SETUSER', 'sub', 'allchannels');
      const off = await subs.on('news', (m) => heard.push(`second ${m}`));
      await eventually(async () => (await t.raw.publish('news', 'hello')) === 1);
      await eventually(() => heard.length > 0);
      // Only the handler whose subscription Redis confirmed hears it.
      expect(heard.every((h) => h === 'second hello')).toBe(true);
      await off();
      expect(await t.raw.publish('news', 'gone')).toBe(0);
    } finally {
      await subs.close();
    }
  });

  /** A subscriber connection as user `user` whose SUBSCRIBEs are counted; `onFirstRefusal` runs before the first refusal is told. */
  function refusingConnection(user: string, onFirstRefusal: () => Promise<unknown>) {
    const conn = new Redis({ host: '127.0.0.1', port: t.server.port, username: user, password: 'pw', lazyConnect: false });
    const subscribe = conn.subscribe.bind(conn) as (channel: string) => Promise<unknown>;
    let calls = 0;
    (conn as unknown as { subscribe: (channel: string) => Promise<unknown> }).subscribe = async (channel) => {
      calls++;
      try {
        return await subscribe(channel);
      } catch (e) {
        if (calls === 1) await onFirstRefusal();
        throw e;
      }
    };
    return { subs: new Subscriptions(conn, quietLog), calls: () => calls };
  }

  it('a handler that joined a refused SUBSCRIBE in flight tries once itself: allowed meanwhile, it subscribes and hears', async () => {
    await t.raw.call('ACL', 'SETUSER', 'joiner', 'on', '>pw', '~*', '+@all', 'resetchannels');
    // The refusal is lifted after Redis refused the first SUBSCRIBE and before either handler is told.
    const { subs, calls } = refusingConnection('joiner', () => t.raw.call('ACL', 'SETUSER', 'joiner', 'allchannels'));
    try {
      const heard: string[] = [];
      const first = subs.on('alerts', (m) => heard.push(`first ${m}`));
      const joined = subs.on('alerts', (m) => heard.push(`joined ${m}`));
      await expect(first).rejects.toThrow(/NOPERM|permission/i);
      const off = await joined;
      expect(calls()).toBe(2);
      await eventually(async () => (await t.raw.publish('alerts', 'hi')) === 1);
      await eventually(() => heard.length > 0);
      expect(heard.every((h) => h === 'joined hi')).toBe(true);
      await off();
    } finally {
      await subs.close();
    }
  });

  it('still refused: every joined handler is refused after one more SUBSCRIBE, not one each', async () => {
    await t.raw.call('ACL', 'SETUSER', 'never', 'on', '>pw', '~*', '+@all', 'resetchannels');
    const { subs, calls } = refusingConnection('never', async () => undefined);
    try {
      const all = [0, 1, 2, 3].map(() => subs.on('alerts', () => undefined));
      for (const p of all) await expect(p).rejects.toThrow(/NOPERM|permission/i);
      expect(calls()).toBe(2);
    } finally {
      await subs.close();
    }
  });
});
