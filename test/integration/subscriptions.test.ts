/**
 * The shared subscriber connection: a SUBSCRIBE that Redis refuses is not
 * remembered as done. Refused here by an ACL user without channel access
 * (NOPERM) on a private redis-server; once the user may subscribe, the next
 * handler for that channel subscribes again and receives what is published.
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
});
