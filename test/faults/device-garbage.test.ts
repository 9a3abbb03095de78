/**
 * Fault: a device that answers garbage (a proxy in front of the simulator
 * replaces every answer with random bytes).
 * Kept: the runtime and the actor (no restart); the point is never `good`
 * while the answers are garbage, and good again once they are (the link is
 * reconnected to restore its framing). Lost: the readings that were garbage.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { freePort } from '../../runtime/redisServer.js';
import { startRuntime } from '../../runtime/runtime.js';
import { startSim } from '../../runtime/sim.js';
import { eventually, quietLog, sleep } from '../helpers/servers.js';
import { privateRedisSuite } from '../helpers/suite.js';
import { startTcpProxy } from '../helpers/tcpProxy.js';
import { modbusFaultSite } from './site.js';

const t = privateRedisSuite();

describe('fault: a device that answers garbage', () => {
  it('never good while garbage, good again once the answers are; no crash, no restart', async () => {
    const simPort = await freePort();
    t.sim = await startSim(modbusFaultSite(simPort), { updateMs: 20 });
    let garbage = false;
    const proxy = await startTcpProxy(simPort, t.cleanups, (d) => (garbage ? randomBytes(d.length) : d));
    t.running = await startRuntime(modbusFaultSite(proxy.port), { redisUrl: t.server.url, log: quietLog });
    await eventually(async () => (await t.raw.hget('comsrv:mb:m:q', '1')) === 'good');
    garbage = true;
    await eventually(async () => (await t.raw.hget('comsrv:mb:m:q', '1')) !== 'good', 3_000);
    for (let i = 0; i < 10; i++) {
      await sleep(100);
      expect(await t.raw.hget('comsrv:mb:m:q', '1')).not.toBe('good');
    }
    expect(await t.raw.hget('actor:root', 'status')).toBe('running');
    expect(await t.raw.hget('actor:channel/mb', 'restarts')).toBe('0');
    // Good again once the answers are: after random bytes a TCP stream has lost its framing, so the
    // link is reconnected when no device on it has answered in two polls that asked (ModbusLink).
    garbage = false;
    await eventually(async () => (await t.raw.hget('comsrv:mb:m:q', '1')) === 'good', 10_000);
    expect(await t.raw.hget('actor:channel/mb', 'restarts')).toBe('0');
  });
});
