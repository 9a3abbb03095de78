/**
 * Fault: the TCP link to a Modbus device dropped in the middle of a request
 * (the simulator closes the connection on the request).
 * Kept: the runtime and the actor (no restart); the channel counts a link
 * error, marks its points comm-failure while it reconnects with backoff (no
 * frozen value reads good), and values are good again. Lost: the polls during
 * the drop.
 */
import { describe, expect, it } from 'vitest';
import { freePort } from '../../runtime/redisServer.js';
import { startRuntime } from '../../runtime/runtime.js';
import { startSim } from '../../runtime/sim.js';
import { eventually, quietLog, sleep } from '../helpers/servers.js';
import { privateRedisSuite } from '../helpers/suite.js';
import { modbusFaultSite } from './site.js';

const t = privateRedisSuite();
const linkErrors = async () => Number(JSON.parse((await t.raw.hget('actor:channel/mb', 'context')) ?? '{}').linkErrors ?? 0);

describe('fault: a TCP link dropped mid-request', () => {
  it('reconnects with backoff; values come back; no restart', async () => {
    const site = modbusFaultSite(await freePort());
    t.sim = await startSim(site, { updateMs: 20 });
    t.running = await startRuntime(site, { redisUrl: t.server.url, log: quietLog });
    await eventually(async () => (await t.raw.hget('comsrv:mb:m:q', '1')) === 'good');
    t.sim.setFault('mb', 1, { kind: 'drop' });
    await eventually(async () => (await linkErrors()) > 0, 5_000);
    // While the link is down nothing reads the device: its value is not reported good (it was, frozen, before).
    await eventually(async () => (await t.raw.hget('comsrv:mb:m:q', '1')) === 'comm-failure', 3_000);
    for (let i = 0; i < 10; i++) {
      await sleep(100);
      expect(await t.raw.hget('comsrv:mb:m:q', '1')).toBe('comm-failure');
    }
    t.sim.setFault('mb', 1, { kind: 'none' });
    const ts = Number(await t.raw.hget('comsrv:mb:m:ts', '1'));
    await eventually(async () => (await t.raw.hget('comsrv:mb:m:q', '1')) === 'good' && Number(await t.raw.hget('comsrv:mb:m:ts', '1')) > ts, 5_000);
    expect(await t.raw.hget('actor:channel/mb', 'restarts')).toBe('0');
    expect(await t.raw.hget('actor:root', 'status')).toBe('running');
  });
});
