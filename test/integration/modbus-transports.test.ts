/**
 * The other transports and an independent peer: Modbus RTU through a socat
 * pseudo-terminal pair, RTU over TCP, and Debian's python3-pymodbus server
 * (so our client is not only tested against our own simulator).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../runtime/config/load.js';
import { freePort } from '../../runtime/redisServer.js';
import { startRuntime } from '../../runtime/runtime.js';
import { startSim } from '../../runtime/sim.js';
import { eventually, quietLog, writeSite } from '../helpers/servers.js';
import { commandResult, privateRedisSuite } from '../helpers/suite.js';

const t = privateRedisSuite();

const points = `    points:
      - { type: m, id: 1, scale: 0.1, modbus: { unit: 7, fn: 4, address: 0, dataType: int16 }, sim: { kind: constant, value: -12.5 } }
      - { type: m, id: 2, modbus: { unit: 7, fn: 3, address: 4, dataType: float64, byteOrder: DCBA }, sim: { kind: constant, value: 3.25 } }
      - { type: a, id: 1, min: 0, max: 100, modbus: { unit: 7, fn: 3, address: 10, dataType: uint16 } }
models:
  - id: hp
    controls: { sp: {} }
    mapping: { sp: "ch:a:1" }
`;

async function readsAndWrites() {
  const v = await eventually(async () => {
    const m = await t.raw.hgetall('comsrv:ch:m');
    return m['1'] && m['2'] ? m : undefined;
  });
  expect(Number(v['1'])).toBe(-12.5);
  expect(Number(v['2'])).toBe(3.25);
  const id = await t.bus.commands.m2c('hp', 'sp', 55, 'test', 5_000);
  const done = await commandResult(t.bus, id);
  expect(done).toMatchObject({ status: 'confirmed', readback: 55 });
}

describe('Modbus transports', () => {
  it('RTU over a pseudo-terminal pair (socat)', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'voltage-pty-')), 'ttyV0');
    const site = loadConfig(
      writeSite({
        'site.yaml': `channels:\n  - id: ch\n    protocol: modbus-rtu\n    serial: { path: ${path}, baudRate: 38400 }\n    pollMs: 100\n    timeoutMs: 300\n${points}`,
      }),
    );
    t.sim = await startSim(site);
    t.running = await startRuntime(site, { redisUrl: t.server.url, log: quietLog });
    await readsAndWrites();
    expect(t.sim.channels[0]!.devices.get(7)!.holding[10]).toBe(55);
  });

  it('RTU over TCP', async () => {
    const port = await freePort();
    const site = loadConfig(
      writeSite({ 'site.yaml': `channels:\n  - id: ch\n    protocol: modbus-rtu-tcp\n    port: ${port}\n    pollMs: 100\n    timeoutMs: 300\n${points}` }),
    );
    t.sim = await startSim(site);
    t.running = await startRuntime(site, { redisUrl: t.server.url, log: quietLog });
    await readsAndWrites();
  });

  it('against an independent implementation: pymodbus', async () => {
    const port = await freePort();
    const python = spawn('/usr/bin/python3', ['test/fixtures/pymodbus_server.py', String(port)], { stdio: ['ignore', 'pipe', 'ignore'] });
    t.cleanups.push(() => python.kill());
    await new Promise<void>((res, rej) => {
      python.stdout.once('data', () => res());
      python.once('exit', (code) => rej(new Error(`pymodbus server exited with ${code} (is python3-pymodbus installed?)`)));
    });
    const site = loadConfig(
      writeSite({
        'site.yaml': `channels:
  - id: py
    protocol: modbus-tcp
    port: ${port}
    pollMs: 100
    timeoutMs: 500
    points:
      - { type: m, id: 1, modbus: { unit: 1, fn: 3, address: 0, dataType: float32 } }
      - { type: m, id: 2, modbus: { unit: 1, fn: 3, address: 2, dataType: int16 } }
      - { type: m, id: 3, modbus: { unit: 1, fn: 4, address: 5 } }
      - { type: s, id: 1, modbus: { unit: 1, fn: 1, address: 3 } }
      - { type: a, id: 1, modbus: { unit: 1, fn: 3, address: 10 } }
models:
  - id: py
    controls: { sp: {} }
    mapping: { sp: "py:a:1" }
`,
      }),
    );
    t.running = await startRuntime(site, { redisUrl: t.server.url, log: quietLog });
    await eventually(async () => {
      await new Promise((r) => setTimeout(r, 50));
      const [m, s] = await Promise.all([t.raw.hgetall('comsrv:py:m'), t.raw.hgetall('comsrv:py:s')]);
      if (!m['3'] || !s['1']) return undefined;
      // Three registers at 0..2 coalesced into one read; the others on their own.
      expect(m).toEqual({ 1: '12.500000', 2: '-200.000000', 3: '777.000000' });
      expect(s['1']).toBe('1.000000');
      return true;
    });
    const id = await t.bus.commands.m2c('py', 'sp', 4321, 'test', 5_000);
    const done = await commandResult(t.bus, id);
    expect(done).toMatchObject({ status: 'confirmed', readback: 4321 });
  }, 30_000); // python3 and pymodbus start slowly on a loaded machine (one run took over 10 s)
});
