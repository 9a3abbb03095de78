/**
 * Control commands, from m2c to the device and back: validated against the
 * model and the point's limits, consumed by the channel through a consumer
 * group, written, read back and committed; never lost across a restart; never
 * applied late. And the Lua side accepts exactly the transitions the
 * command machine has.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { getNextSnapshot } from 'xstate';
import { commandMachine, type CommandStatus } from '../../machines/commandMachine.js';
import { loadConfig } from '../../runtime/config/load.js';
import { freePort } from '../../runtime/redisServer.js';
import { startRuntime } from '../../runtime/runtime.js';
import { startSim } from '../../runtime/sim.js';
import { eventually, quietLog, sleep, writeSite } from '../helpers/servers.js';
import { commandResult, privateRedisSuite } from '../helpers/suite.js';
import { modbusCommandChannel } from '../helpers/modbusSite.js';

const t = privateRedisSuite();

const VIRTUAL = `channels:
  - id: v1
    protocol: virtual
    pollMs: 50
    points:
      - { type: m, id: 1, sim: { kind: constant, value: 1 } }
      - { type: a, id: 1, min: 0, max: 100 }
      - { type: c, id: 1 }
models:
  - id: inv
    measurements: { P: {} }
    controls: { limit: { unit: kW }, start: {} }
    mapping: { P: "v1:m:1", limit: "v1:a:1", start: "v1:c:1" }
`;

const result = (id: string) => commandResult(t.bus, id);

/** The virtual site after its runtime ran once and stopped: the channel's consumer group exists, nobody consumes it. */
async function ranOnce() {
  const site = loadConfig(writeSite({ 'site.yaml': VIRTUAL }));
  t.running = await startRuntime(site, { redisUrl: t.server.url, log: quietLog });
  await t.running.stop();
  t.running = undefined;
  return site;
}

describe('commands on a virtual device', () => {
  it('confirmed: written, read back, and the channel point shows it', async () => {
    t.running = await startRuntime(loadConfig(writeSite({ 'site.yaml': VIRTUAL })), { redisUrl: t.server.url, log: quietLog });
    const id = await t.bus.commands.m2c('inv', 'limit', 42.5, 'test', 5_000);
    const c = await result(id);
    expect(c).toMatchObject({ status: 'confirmed', value: 42.5, readback: 42.5, source: 'test', channel: 'v1' });
    await eventually(async () => (await t.raw.hget('comsrv:v1:a', '1')) === '42.500000');
    expect(await t.raw.xlen('cmd:v1')).toBe(0);
    expect(await t.raw.xpending('cmd:v1', 'channel')).toEqual([0, null, null, null]);
  });

  it('rejects a value out of the point limits, an unknown control, and a value that is not a number, writing nothing', async () => {
    await startRuntime(loadConfig(writeSite({ 'site.yaml': VIRTUAL })), { redisUrl: t.server.url, log: quietLog }).then((r) => {
      t.running = r;
    });
    const keysBefore = (await t.raw.keys('command:*')).length;
    await expect(t.bus.commands.m2c('inv', 'limit', 150, 'test', 5_000)).rejects.toThrow('150.000000 is above the maximum 100 of inv.limit');
    await expect(t.bus.commands.m2c('inv', 'limit', -1, 'test', 5_000)).rejects.toThrow('below the minimum 0');
    await expect(t.bus.commands.m2c('inv', 'P', 1, 'test', 5_000)).rejects.toThrow('model inv has no control P');
    await expect(t.bus.commands.m2c('nope', 'limit', 1, 'test', 5_000)).rejects.toThrow('m2c: no model nope');
    await expect(t.raw.fcall('m2c', 3, 'mapping:m2c', 'cmd:seq', 'site:models', 'inv', 'limit', 'abc', 'me', Date.now(), 1000)).rejects.toThrow(
      'value must be a number',
    );
    expect((await t.raw.keys('command:*')).length).toBe(keysBefore);
    expect(await t.raw.xlen('cmd:v1')).toBe(0);
  });

  it('a command accepted while the runtime is down is executed when it comes back; one past its deadline is not applied', async () => {
    const site = await ranOnce();
    const kept = await t.bus.commands.m2c('inv', 'limit', 12, 'test', 60_000);
    const expired = await t.bus.commands.m2c('inv', 'start', 1, 'test', 1);
    await sleep(20);
    t.running = await startRuntime(site, { redisUrl: t.server.url, log: quietLog });
    expect(await result(kept)).toMatchObject({ status: 'confirmed', readback: 12 });
    expect(await result(expired)).toMatchObject({ status: 'timeout', message: 'expired before it could be written (a late setpoint is not applied)' });
    await eventually(async () => (await t.raw.hget('comsrv:v1:c', '1')) === '0.000000');
  });

  it('an entry delivered before a crash and never acknowledged is reclaimed and executed', async () => {
    const site = await ranOnce();
    const id = await t.bus.commands.m2c('inv', 'limit', 33, 'test', 60_000);
    // The channel's consumer took it (as a runtime would have just before dying) and never acked it.
    await t.bus.commands.ensureCommandGroup('v1', 'channel');
    const delivered = await t.bus.commands.readCommands('v1', 'channel', 'v1', false);
    expect(delivered.map((e) => e.id)).toEqual([id]);
    expect((await t.raw.xpending('cmd:v1', 'channel'))[0]).toBe(1);
    t.running = await startRuntime(site, { redisUrl: t.server.url, log: quietLog });
    expect(await result(id)).toMatchObject({ status: 'confirmed', readback: 33 });
    expect((await t.raw.xpending('cmd:v1', 'channel'))[0]).toBe(0);
  });
});

describe('commands on a Modbus device', () => {
  it('confirmed, failed with the device exception, timeout when the device does not answer', async () => {
    const port = await freePort();
    const site = loadConfig(
      writeSite({
        'site.yaml': `${modbusCommandChannel(port, [
          '- { type: a, id: 2, modbus: { unit: 1, fn: 3, address: 20, dataType: float32, byteOrder: CDAB } }',
          '- { type: c, id: 1, modbus: { unit: 1, fn: 1, address: 3 } }',
        ])}models:
  - id: dev
    controls: { setpoint: {}, target: {}, run: {} }
    mapping: { setpoint: "mb:a:1", target: "mb:a:2", run: "mb:c:1" }
`,
      }),
    );
    t.sim = await startSim(site);
    t.running = await startRuntime(site, { redisUrl: t.server.url, log: quietLog });
    const dev = t.sim.channels[0]!.devices.get(1)!;
    expect(await result(await t.bus.commands.m2c('dev', 'setpoint', -12.3, 'test', 5_000))).toMatchObject({ status: 'confirmed', readback: -12.3 });
    expect(dev.holding[10]).toBe(0x10000 - 123);
    expect(await result(await t.bus.commands.m2c('dev', 'target', 1234.5, 'test', 5_000))).toMatchObject({ status: 'confirmed', readback: 1234.5 });
    expect(await result(await t.bus.commands.m2c('dev', 'run', 1, 'test', 5_000))).toMatchObject({ status: 'confirmed' });
    expect(dev.coils[3]).toBe(1);
    dev.holes.push({ fn: 3, from: 20, to: 22 });
    const refused = await result(await t.bus.commands.m2c('dev', 'target', 1, 'test', 5_000));
    expect(refused.status).toBe('failed');
    expect(refused.message).toContain('Illegal data address');
    dev.holes.length = 0;
    dev.fault = { kind: 'no-answer' };
    expect(await result(await t.bus.commands.m2c('dev', 'target', 2, 'test', 5_000))).toMatchObject({ status: 'timeout' });
  });
});

describe('the Lua side and the command machine agree', () => {
  const statuses: CommandStatus[] = ['pending', 'confirmed', 'failed', 'timeout'];
  it('property: cmd_result accepts a change exactly when commandMachine has that transition', async () => {
    await t.raw.call('FUNCTION', 'LOAD', 'REPLACE', (await import('../../runtime/redis/library.js')).LIBRARY_SOURCE);
    await t.raw.xgroup('CREATE', 'cmd:x', 'channel', '0', 'MKSTREAM');
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...statuses), fc.constantFrom(...statuses.filter((s) => s !== 'pending')), async (from, to) => {
        await t.raw.hset('command:p', 'id', 'p', 'status', from);
        const snapshot = commandMachine.resolveState({ value: from, context: undefined as never });
        const next = getNextSnapshot(commandMachine, snapshot, { type: `command.${to}` } as never);
        const xstateAccepts = next.value === to && from !== to;
        const entry = (await t.raw.xadd('cmd:x', '*', 'id', 'p')) as string;
        const lua = await t.raw
          .fcall('cmd_result', 4, 'command:p', 'cmd:x', 'outbox', 'stats:outbox', 'p', to, '', Date.now(), 'channel', entry, '', 1_000_000)
          .then(
            () => true,
            () => false,
          );
        const stored = await t.raw.hget('command:p', 'status');
        if (from === to)
          expect(lua).toBe(true); // a retry of the same result only acknowledges
        else expect(lua).toBe(xstateAccepts);
        expect(stored).toBe(lua ? to : from);
      }),
      { numRuns: 60 },
    );
  });
});
