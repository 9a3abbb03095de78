/**
 * Modbus benchmark: D devices, each on its own Modbus TCP connection (as
 * devices with their own addresses are), 100 holding registers each, polled
 * every 100 ms (one coalesced read of 100 registers per poll) into Redis
 * through c2m, one model per device. The devices are `voltage sim` in its own
 * process. Also: what the lean simulator server sustains.
 */
import { spawn } from 'node:child_process';
import ModbusSerial from 'modbus-serial';
import type { ModbusRTU } from 'modbus-serial/ModbusRTU.js';
import { freePort } from '../../runtime/redisServer.js';
import { SimDevice } from '../../actors/modbus/device.js';
import { f, measureSite, type Windows } from './harness.js';

const POINTS = 100;

export async function modbusFiles(devices: number, pollMs: number): Promise<Record<string, string>> {
  const rows = ['type,id,name,modbus.unit,modbus.fn,modbus.address,sim.kind,sim.amplitude,sim.offset,sim.periodMs,sim.phase'];
  for (let i = 0; i < POINTS; i++) rows.push(`m,${i + 1},r${i},1,3,${i},sine,1000,2000,30000,${((i / POINTS) * 6.28).toFixed(3)}`);
  const channels: string[] = [];
  const models: string[] = [];
  for (let d = 0; d < devices; d++) {
    channels.push(
      `  - { id: dev${d}, protocol: modbus-tcp, host: 127.0.0.1, port: ${await freePort()}, pollMs: ${pollMs}, timeoutMs: 1000, pointsFile: registers.csv }`,
    );
    models.push(`  - { id: d${d}, template: device, channel: dev${d} }`);
  }
  const measurements = Array.from({ length: POINTS }, (_, i) => `      r${i}: {}`).join('\n');
  return {
    'runtime.yaml': 'runtime:\n  site: modbus-bench\n  log: { level: warn }\n',
    'channels.yaml': `channels:\n${channels.join('\n')}\n`,
    'models.yaml': `templates:\n  device:\n    measurements:\n${measurements}\nmodels:\n${models.join('\n')}\n`,
    'registers.csv': `${rows.join('\n')}\n`,
  };
}

export const MODBUS_HEADER =
  '| devices × registers @ poll | polls/s (expected) | missed polls | points/s | poll→model hash p50 / p99 (ms), seen by a subscriber | poll→c2m acknowledged p50 / p99 (ms), inside the runtime | runtime CPU | Redis CPU | simulator CPU | runtime RSS | runtime event-loop delay p99 / max | host steal |\n|---|---|---|---|---|---|---|---|---|---|---|---|';

export async function modbusRow(devices: number, pollMs: number, windows: Windows): Promise<string> {
  const files = await modbusFiles(devices, pollMs);
  const r = await measureSite(files, windows, (dir) => [
    spawn('./runtime/bin/voltage.js', ['sim', '--config', dir], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, LOG_FORMAT: 'json' } }),
  ]);
  const expected = (devices * 1000) / pollMs;
  return `| ${devices} × ${POINTS} @ ${pollMs} ms | ${f(r.pollsPerSecond)} (${f(expected)}) | ${r.missedPolls} | ${f(r.delivered)} | ${f(r.p50)} / ${f(r.p99)} | ${r.pollToRedis} | ${f(r.runtimeCpu)} % | ${f(r.redisCpu)} % | ${f(r.helperCpu)} % | ${f(r.runtimeRss)} MB | ${r.loopDelay} | ${f(r.steal, 1)} % |`;
}

/** Requests/s the lean server answers to modbus-serial clients reading 100 registers, per number of connections. */
export async function simulatorCapacity(connections: number, ms: number): Promise<string> {
  const { listenModbus } = await import('../../actors/modbus/server.js');
  const dev = new SimDevice(1);
  const srv = await listenModbus(new Map([[1, dev]]), { host: '127.0.0.1', port: 0, framing: 'tcp' });
  const Client = ModbusSerial as unknown as new () => ModbusRTU;
  const clients = await Promise.all(
    Array.from({ length: connections }, async () => {
      const c = new Client();
      await c.connectTCP('127.0.0.1', { port: srv.port });
      c.setID(1);
      return c;
    }),
  );
  const end = Date.now() + ms;
  let n = 0;
  await Promise.all(
    clients.map(async (c) => {
      while (Date.now() < end) {
        await c.readHoldingRegisters(0, 100);
        n++;
      }
    }),
  );
  for (const c of clients) c.close(() => undefined);
  await srv.close();
  return `| ${connections} | ${f(n / (ms / 1000))} |`;
}
