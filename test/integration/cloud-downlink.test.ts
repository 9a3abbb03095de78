/**
 * Commands from the cloud, end to end on a simulated Modbus TCP device: a
 * real MQTT client publishes on `{prefix}/cmd` to a private mosquitto, the
 * link sends it through m2c (source `cloud:{link}`), the channel writes the
 * device's register and reads it back, and the tracked result is published on
 * `{prefix}/cmd/{id}/result`; a write the device refuses comes back `failed`
 * with its exception, and one to a device that never answers ends `timeout`,
 * published the same way.
 */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../runtime/config/load.js';
import { freePort } from '../../runtime/redisServer.js';
import { startRuntime } from '../../runtime/runtime.js';
import { startSim } from '../../runtime/sim.js';
import { spawnMosquitto } from '../helpers/mosquitto.js';
import { watchBroker } from '../helpers/mqttWatch.js';
import { eventually, quietLog, writeSite } from '../helpers/servers.js';
import { privateRedisSuite } from '../helpers/suite.js';
import { modbusCommandChannel } from '../helpers/modbusSite.js';

const t = privateRedisSuite();

describe('commands from the cloud on a Modbus device', () => {
  it('a setpoint from an MQTT client is written to the device register, read back, and its confirmed result published; a refused write comes back failed, an unanswered one timeout', async () => {
    const broker = await spawnMosquitto();
    t.cleanups.push(() => broker.stop());
    const port = await freePort();
    const site = loadConfig(
      writeSite({
        'site.yaml': `${modbusCommandChannel(port)}models:
  - id: pcs
    measurements: { P: {} }
    controls: { limit: {} }
    mapping: { P: "mb:m:1", limit: "mb:a:1" }
`,
        'cloud.yaml': `cloud:
  links:
    - id: ops
      url: "${broker.url}"
      reconnect: { minBackoffMs: 200, maxBackoffMs: 1000 }
      downlink: { commands: true }
`,
      }),
    );
    t.sim = await startSim(site);
    const dev = t.sim.channels[0]!.devices.get(1)!;
    const cloud = await watchBroker(t.cleanups, broker.url, 'voltage/site/cmd/+/result');
    t.running = await startRuntime(site, { redisUrl: t.server.url, log: quietLog });
    await eventually(async () => (await t.raw.hget('actor:cloud/ops', 'state'))?.includes('online'));
    // The simulator starts an adjustment at its minimum (-100: raw -1000 as int16).
    expect(dev.holding[10]).toBe(0x10000 - 1000);

    await cloud.client.publishAsync('voltage/site/cmd', JSON.stringify({ id: 'sp1', model: 'pcs', name: 'limit', value: -12.3, timeoutMs: 5_000 }), { qos: 1 });
    const ok = await eventually(() => cloud.got.find((m) => m.topic === 'voltage/site/cmd/sp1/result'));
    expect(ok.body).toMatchObject({ id: 'sp1', status: 'confirmed', readback: -12.3 });
    // The register holds the raw value (scale 0.1, int16), and the command is the tracked, audited one.
    expect(dev.holding[10]).toBe(0x10000 - 123);
    expect(await t.bus.commands.command(ok.body.command as string)).toMatchObject({ source: 'cloud:ops', status: 'confirmed', channel: 'mb', value: -12.3 });
    await eventually(async () => (await t.raw.hget('comsrv:mb:a', '1')) === '-12.300000');

    // The device refuses the address: the result says so, and the register keeps its value.
    dev.holes.push({ fn: 3, from: 10, to: 11 });
    await cloud.client.publishAsync('voltage/site/cmd', JSON.stringify({ id: 'sp2', model: 'pcs', name: 'limit', value: 40, timeoutMs: 5_000 }), { qos: 1 });
    const failed = await eventually(() => cloud.got.find((m) => m.topic === 'voltage/site/cmd/sp2/result'));
    expect(failed.body).toMatchObject({ id: 'sp2', status: 'failed', message: expect.stringContaining('Illegal data address') });
    expect(dev.holding[10]).toBe(0x10000 - 123);

    // The device stops answering: the command ends as timeout, and that end is published like the others.
    dev.holes.length = 0;
    dev.fault = { kind: 'no-answer' };
    await cloud.client.publishAsync('voltage/site/cmd', JSON.stringify({ id: 'sp3', model: 'pcs', name: 'limit', value: 7, timeoutMs: 1_000 }), { qos: 1 });
    const late = await eventually(() => cloud.got.find((m) => m.topic === 'voltage/site/cmd/sp3/result'), 5_000);
    expect(late.body).toMatchObject({ id: 'sp3', status: 'timeout', command: expect.any(String) });
    expect(await t.bus.commands.command(late.body.command as string)).toMatchObject({ source: 'cloud:ops', status: 'timeout' });
    expect(cloud.got.filter((m) => m.topic === 'voltage/site/cmd/sp3/result')).toHaveLength(1);
  }, 30_000);
});
