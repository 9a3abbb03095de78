/**
 * `voltage sim`: serves the Modbus channels of a site from simulated devices
 * (actors/modbus/device.ts) — TCP and RTU over TCP on the channel's port, RTU
 * on a pseudo-terminal pair made by socat whose other end is the channel's
 * serial path. Measurement and signal points follow their `sim` waveform;
 * control and adjustment points keep what is written to them.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { encodeRegisters, type ByteOrder, type DataType } from '../actors/modbus/codec.js';
import { SimDevice, type Fault } from '../actors/modbus/device.js';
import { listenModbus, serveRtu, type RunningServer } from '../actors/modbus/server.js';
import { modbusDataType } from './config/modbusRules.js';
import type { ModbusChannelConfig, PointConfig, SimSpec } from './config/schema.js';
import type { SiteConfig } from './config/site.js';
import { VoltageError } from './errors.js';

export interface SimChannel {
  readonly channel: ModbusChannelConfig;
  readonly devices: ReadonlyMap<number, SimDevice>;
  /** Where a client connects: host:port, or the serial path. */
  readonly endpoint: string;
}

export interface RunningSim {
  readonly channels: readonly SimChannel[];
  setFault(channelId: string, unit: number, fault: Fault): void;
  stop(): Promise<void>;
}

function simValue(sim: SimSpec, now: number, state: { v: number }): number {
  switch (sim.kind) {
    case 'sine': return sim.offset + sim.amplitude * Math.sin((2 * Math.PI * now) / sim.periodMs + sim.phase);
    case 'square': return Math.floor(now / (sim.periodMs / 2)) % 2 === 0 ? sim.high : sim.low;
    case 'constant': return sim.value;
    case 'counter': state.v = sim.max !== undefined && state.v + sim.step > sim.max ? sim.start : state.v + sim.step; return state.v;
    case 'random_walk': state.v = Math.min(sim.max, Math.max(sim.min, state.v + (Math.random() * 2 - 1) * sim.step)); return state.v;
    default: return 0;
  }
}

/** Writes a point's engineering value into its device's registers (inverse of scale and offset). */
export function setPointValue(dev: SimDevice, p: PointConfig, value: number): void {
  const m = p.modbus!;
  const raw = (value - p.offset) / p.scale;
  if (m.fn === 1 || m.fn === 2) {
    (m.fn === 1 ? dev.coils : dev.discrete)[m.address] = raw ? 1 : 0;
    return;
  }
  const type = modbusDataType(p) as DataType;
  const bank = m.fn === 3 ? dev.holding : dev.input;
  if (m.bit !== undefined) {
    bank[m.address] = raw ? bank[m.address]! | (1 << m.bit) : bank[m.address]! & ~(1 << m.bit);
    return;
  }
  const v = type.startsWith('float') ? raw : Math.round(raw);
  let regs: number[];
  try {
    regs = encodeRegisters(v, type, m.byteOrder as ByteOrder);
  } catch {
    return; // a waveform outside the type's range: leave the registers as they are
  }
  regs.forEach((r, i) => { bank[m.address + i] = r; });
}

export async function startSim(site: SiteConfig, opts: { updateMs?: number } = {}): Promise<RunningSim> {
  const channels: SimChannel[] = [];
  const servers: RunningServer[] = [];
  const extra: Array<{ close(): Promise<void> }> = [];
  const driven: Array<{ dev: SimDevice; p: PointConfig; state: { v: number } }> = [];
  try {
    for (const ch of site.channels) {
      if (ch.protocol === 'virtual' || !ch.enabled) continue;
      const devices = new Map<number, SimDevice>();
      for (const p of ch.points) {
        if (!p.modbus) continue;
        let dev = devices.get(p.modbus.unit);
        if (!dev) devices.set(p.modbus.unit, (dev = new SimDevice(p.modbus.unit)));
        if (p.sim) {
          const state = { v: p.sim.kind === 'counter' ? p.sim.start - p.sim.step : p.sim.kind === 'random_walk' ? p.sim.start : 0 };
          driven.push({ dev, p, state });
        } else if (p.min !== undefined) {
          setPointValue(dev, p, p.min);
        }
      }
      if (ch.protocol === 'modbus-rtu') {
        const pty = await ptyPair(ch.serial.path);
        extra.push(pty);
        serveRtu(pty.port, devices);
        channels.push({ channel: ch, devices, endpoint: ch.serial.path });
      } else {
        const srv = await listenModbus(devices, { host: ch.host, port: ch.port, framing: ch.protocol === 'modbus-tcp' ? 'tcp' : 'rtu' });
        servers.push(srv);
        channels.push({ channel: ch, devices, endpoint: `${ch.host}:${srv.port}` });
      }
    }
  } catch (e) {
    await Promise.all([...servers, ...extra].map((s) => s.close()));
    throw e;
  }
  const update = () => {
    const now = Date.now();
    for (const d of driven) setPointValue(d.dev, d.p, simValue(d.p.sim!, now, d.state));
  };
  update();
  const timer = setInterval(update, opts.updateMs ?? 100);
  return {
    channels,
    setFault(channelId, unit, fault) {
      const dev = channels.find((c) => c.channel.id === channelId)?.devices.get(unit);
      if (!dev) throw new VoltageError('runtime', 'SIM_UNKNOWN', `the simulator has no unit ${unit} on channel ${channelId}`);
      dev.fault = fault;
    },
    async stop() {
      clearInterval(timer);
      await Promise.all([...servers, ...extra].map((s) => s.close()));
    },
  };
}

/**
 * A pseudo-terminal pair: `path` (for the channel) ↔ `path.sim` (opened here).
 * Made by socat, which must be on PATH (Debian package socat).
 */
async function ptyPair(path: string): Promise<{ port: import('serialport').SerialPort; close(): Promise<void> }> {
  const { SerialPort } = await import('serialport');
  const simPath = `${path}.sim`;
  let proc: ChildProcess;
  try {
    proc = spawn('socat', ['-d', '-d', `pty,raw,echo=0,link=${path}`, `pty,raw,echo=0,link=${simPath}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    throw new VoltageError('runtime', 'SIM_PTY', `cannot start socat for ${path}: ${(e as Error).message}`);
  }
  const spawnError = new Promise<never>((_, rej) => proc.once('error', (e) => rej(new VoltageError('runtime', 'SIM_PTY', `cannot start socat (is it installed?): ${e.message}`))));
  for (let i = 0; i < 100 && !(existsSync(path) && existsSync(simPath)); i++) {
    await Promise.race([new Promise((r) => setTimeout(r, 30)), spawnError]);
  }
  if (!existsSync(simPath)) {
    proc.kill();
    throw new VoltageError('runtime', 'SIM_PTY', `socat did not create ${path} within 3 s`);
  }
  const port = new SerialPort({ path: simPath, baudRate: 115200 });
  await new Promise<void>((res, rej) => { port.once('open', () => res()); port.once('error', rej); });
  return {
    port,
    close: async () => {
      await new Promise<void>((r) => (port.isOpen ? port.close(() => r()) : r()));
      proc.kill();
      await new Promise((r) => (proc.exitCode !== null ? r(undefined) : proc.once('exit', r)));
    },
  };
}
