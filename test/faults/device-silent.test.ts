/**
 * Fault: a Modbus device that stops answering.
 * Kept: the runtime and every other actor; the device's points go
 * comm-failure, the channel backs the device off, and values come back when
 * it answers again, with no restart of the actor. Lost: the polls it missed.
 */
import { describe, expect, it } from 'vitest';
import { freePort } from '../../runtime/redisServer.js';
import { startRuntime } from '../../runtime/runtime.js';
import { startSim } from '../../runtime/sim.js';
import { eventually, quietLog } from '../helpers/servers.js';
import { privateRedisSuite } from '../helpers/suite.js';
import { modbusFaultSite } from './site.js';

const t = privateRedisSuite();

describe('fault: a device that stops answering', () => {
  it('comm-failure, backoff, recovers; the actor is not restarted', async () => {
    const site = modbusFaultSite(await freePort());
    t.sim = await startSim(site, { updateMs: 20 });
    t.running = await startRuntime(site, { redisUrl: t.server.url, log: quietLog });
    await eventually(async () => (await t.raw.hget('comsrv:mb:m:q', '1')) === 'good');
    t.sim.setFault('mb', 1, { kind: 'no-answer' });
    await eventually(async () => (await t.raw.hget('comsrv:mb:m:q', '1')) === 'comm-failure', 3_000);
    const requests = t.sim.channels[0]!.devices.get(1)!.requests;
    await new Promise((r) => setTimeout(r, 1_000));
    // Backed off: at 100 ms polls it would be asked ~10 times a second; backoff (300–600 ms) asks it a few times.
    expect(t.sim.channels[0]!.devices.get(1)!.requests - requests).toBeLessThan(6);
    t.sim.setFault('mb', 1, { kind: 'none' });
    await eventually(async () => (await t.raw.hget('comsrv:mb:m:q', '1')) === 'good', 3_000);
    expect(await t.raw.hget('actor:channel/mb', 'restarts')).toBe('0');
  });
});
