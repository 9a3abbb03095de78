/**
 * `voltage sim`'s devices over real Modbus TCP, read by modbus-serial: points
 * follow their waveform when they are read (and only then), each at most once
 * per update interval, so a counter steps at that rate whoever reads.
 */
import { afterEach, describe, expect, it } from 'vitest';
import ModbusSerial from 'modbus-serial';
import type { ModbusRTU } from 'modbus-serial/ModbusRTU.js';
import { loadConfig } from '../../runtime/config/load.js';
import { freePort } from '../../runtime/redisServer.js';
import { startSim, type RunningSim } from '../../runtime/sim.js';
import { sleep, writeSite } from '../helpers/servers.js';

let sim: RunningSim | undefined;
let client: ModbusRTU | undefined;
afterEach(async () => {
  await new Promise<void>((r) => (client ? client.close(() => r()) : r()));
  await sim?.stop();
  client = undefined;
  sim = undefined;
});

describe('voltage sim', () => {
  it('computes a point when it is read, at most once per update interval; points not read are not computed', async () => {
    const port = await freePort();
    const site = loadConfig(
      writeSite({
        'site.yaml': `channels:
  - id: sim
    protocol: modbus-tcp
    port: ${port}
    points:
      - { type: m, id: 1, modbus: { unit: 1, fn: 3, address: 0 }, sim: { kind: counter, start: 10, step: 1 } }
      - { type: m, id: 2, modbus: { unit: 1, fn: 3, address: 1, dataType: float32 }, sim: { kind: constant, value: 2.5 } }
      - { type: m, id: 3, modbus: { unit: 2, fn: 4, address: 7 }, sim: { kind: constant, value: 99 } }
      - { type: s, id: 1, modbus: { unit: 2, fn: 2, address: 3 }, sim: { kind: constant, value: 1 } }
`,
      }),
    );
    sim = await startSim(site, { updateMs: 300 });
    const unit2 = sim.channels[0]!.devices.get(2)!;
    const Client = ModbusSerial as unknown as new () => ModbusRTU;
    client = new Client();
    await client.connectTCP('127.0.0.1', { port });
    client.setID(1);

    const first = await client.readHoldingRegisters(0, 3);
    expect(first.data[0]).toBe(10);
    expect(Buffer.from(first.buffer).readFloatBE(2)).toBe(2.5);
    // Within the interval the counter holds; after it, one step, however often it was read.
    for (let i = 0; i < 5; i++) expect((await client.readHoldingRegisters(0, 1)).data[0]).toBe(10);
    await sleep(350);
    expect((await client.readHoldingRegisters(0, 1)).data[0]).toBe(11);
    expect((await client.readHoldingRegisters(0, 1)).data[0]).toBe(11);

    // Unit 2 was never read: nothing of it was computed.
    expect(unit2.input[7]).toBe(0);
    expect(unit2.discrete[3]).toBe(0);
    client.setID(2);
    expect((await client.readInputRegisters(6, 3)).data).toEqual([0, 99, 0]); // a read that covers the point
    expect((await client.readDiscreteInputs(3, 1)).data[0]).toBe(true);
  });
});
