/**
 * `voltage sim`: serves the Modbus channels of a site from simulated devices
 * (actors/modbus/device.ts) — TCP and RTU over TCP on the channel's port, RTU
 * on a pseudo-terminal pair made by socat whose other end is the channel's
 * serial path. Measurement and signal points follow their `sim` waveform;
 * control and adjustment points keep what is written to them.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { coilValue, encodePoint } from '../actors/modbus/codec.js';
import { width } from '../actors/modbus/plan.js';
import { REGISTERS, modbusDataType } from './config/modbusRules.js';
import { SimDevice, type Fault } from '../actors/modbus/device.js';
import { listenModbus, serveRtu, type RunningServer } from '../actors/modbus/server.js';
import type { ModbusChannelConfig, ModbusPointConfig, SimSpec } from './config/schema.js';
import { initialState, sample } from '../actors/channel/waveform.js';
import { isModbusChannel } from '../actors/modbus/protocol.js';
import type { SiteConfig } from './config/site.js';
import { VoltageError } from './errors.js';
import { spawnOwned } from './ownedProcess.js';

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

/** Writes a point's engineering value into its device's registers (inverse of scale and offset). */
export function setPointValue(dev: SimDevice, p: ModbusPointConfig, value: number): void {
  const m = p.modbus;
  if (m.fn === 1 || m.fn === 2) {
    (m.fn === 1 ? dev.coils : dev.discrete)[m.address] = coilValue(p, value) ? 1 : 0;
    return;
  }
  const bank = m.fn === 3 ? dev.holding : dev.input;
  if (m.bit !== undefined) {
    bank[m.address] = coilValue(p, value) ? bank[m.address]! | (1 << m.bit) : bank[m.address]! & ~(1 << m.bit);
    return;
  }
  let regs: number[];
  try {
    regs = encodePoint(p, value);
  } catch {
    return; // a waveform outside the type's range: leave the registers as they are
  }
  regs.forEach((r, i) => {
    bank[m.address + i] = r;
  });
}

interface Driven {
  readonly dev: SimDevice;
  readonly p: ModbusPointConfig;
  readonly sim: SimSpec;
}

/**
 * Points follow their waveform lazily: a read brings the points it covers up to
 * date (each at most once per `updateMs`, so counters and random walks step at
 * that rate whoever reads), rather than a timer computing every point of every
 * device. A timer over 10,000 points kept the simulator busy for milliseconds
 * every 100 ms, and the polls that came meanwhile waited (the benchmark's tail).
 */
function drive(driven: readonly Driven[], updateMs: number): { clear(): void } {
  // One number of waveform state per driven point (counters, random walks).
  const state = Float64Array.from(driven, (d) => initialState(d.sim, d.p));
  const updatedAt = new Float64Array(driven.length).fill(Number.NEGATIVE_INFINITY);
  const update = (i: number, now: number) => {
    if (now - updatedAt[i]! < updateMs) return;
    updatedAt[i] = now;
    const d = driven[i]!;
    setPointValue(d.dev, d.p, sample(d.sim, state, i, now, Math.random));
  };
  const widest = Math.max(...Object.values(REGISTERS));
  // Per device and read function: the driven points ordered by address, with the registers (or bits) they span.
  const byDevice = new Map<SimDevice, Map<number, Array<{ readonly i: number; readonly from: number; readonly to: number }>>>();
  driven.forEach((d, i) => {
    const m = d.p.modbus;
    const span = width({ fn: m.fn, dataType: modbusDataType(d.p) });
    const fns = byDevice.get(d.dev) ?? new Map<number, Array<{ i: number; from: number; to: number }>>();
    byDevice.set(d.dev, fns);
    const list = fns.get(m.fn) ?? [];
    fns.set(m.fn, list);
    list.push({ i, from: m.address, to: m.address + span });
  });
  for (const [dev, fns] of byDevice) {
    for (const list of fns.values()) list.sort((a, b) => a.from - b.from);
    dev.beforeRead = (fn, address, count) => {
      const list = fns.get(fn);
      if (!list) return;
      const now = Date.now();
      const end = address + count;
      // The first point that may overlap [address, end): none is wider than `widest` registers.
      let lo = 0;
      let hi = list.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (list[mid]!.from + widest <= address) lo = mid + 1;
        else hi = mid;
      }
      for (let k = lo; k < list.length && list[k]!.from < end; k++) if (list[k]!.to > address) update(list[k]!.i, now);
    };
  }
  return {
    clear() {
      for (const dev of byDevice.keys()) dev.beforeRead = undefined;
    },
  };
}

export async function startSim(site: SiteConfig, opts: { updateMs?: number } = {}): Promise<RunningSim> {
  const channels: SimChannel[] = [];
  const servers: RunningServer[] = [];
  const extra: Array<{ close(): Promise<void> }> = [];
  const driven: Driven[] = [];
  try {
    for (const ch of site.channels) {
      if (!isModbusChannel(ch) || !ch.enabled) continue;
      const devices = new Map<number, SimDevice>();
      for (const p of ch.points) {
        let dev = devices.get(p.modbus.unit);
        if (!dev) devices.set(p.modbus.unit, (dev = new SimDevice(p.modbus.unit)));
        if (p.sim) driven.push({ dev, p, sim: p.sim });
        else if (p.min !== undefined) {
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
  const lanes = drive(driven, opts.updateMs ?? 100);
  return {
    channels,
    setFault(channelId, unit, fault) {
      const dev = channels.find((c) => c.channel.id === channelId)?.devices.get(unit);
      if (!dev) throw new VoltageError('runtime', 'SIM_UNKNOWN', `the simulator has no unit ${unit} on channel ${channelId}`);
      dev.fault = fault;
    },
    async stop() {
      lanes.clear();
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
    proc = spawnOwned('socat', ['-d', '-d', `pty,raw,echo=0,link=${path}`, `pty,raw,echo=0,link=${simPath}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    throw new VoltageError('runtime', 'SIM_PTY', `cannot start socat for ${path}: ${(e as Error).message}`);
  }
  const spawnError = new Promise<never>((_, rej) =>
    proc.once('error', (e) => rej(new VoltageError('runtime', 'SIM_PTY', `cannot start socat (is it installed?): ${e.message}`))),
  );
  for (let i = 0; i < 100 && !(existsSync(path) && existsSync(simPath)); i++) {
    await Promise.race([new Promise((r) => setTimeout(r, 30)), spawnError]);
  }
  if (!existsSync(simPath)) {
    proc.kill();
    throw new VoltageError('runtime', 'SIM_PTY', `socat did not create ${path} within 3 s`);
  }
  const port = new SerialPort({ path: simPath, baudRate: 115200 });
  await new Promise<void>((res, rej) => {
    port.once('open', () => res());
    port.once('error', rej);
  });
  return {
    port,
    close: async () => {
      await new Promise<void>((r) => (port.isOpen ? port.close(() => r()) : r()));
      proc.kill();
      await new Promise((r) => (proc.exitCode !== null ? r(undefined) : proc.once('exit', r)));
    },
  };
}
