/**
 * One Modbus link (TCP, RTU on a serial line, RTU over TCP) with its devices,
 * as the DeviceIo of a channel actor. Reads follow the coalesced plan, device
 * by device. The failure of one device never stalls the others:
 *  - no answer (after `retries`): that device is backed off on its own, its
 *    points are marked comm-failure, the others keep their poll rate;
 *  - "illegal data address" on a coalesced read: the read is split into one
 *    per point, for good (remembered), so the good points keep coming;
 *  - another exception, a CRC error or a short reply: the points of that read
 *    are marked bad, the device stays in the poll;
 *  - the link itself drops: a transient DeviceError, and the channel's machine
 *    reconnects with backoff.
 */
import type { ModbusRTU } from 'modbus-serial/ModbusRTU.js';

// Loaded when a Modbus channel first connects, so that a site without one does not carry
// modbus-serial and serialport in memory. modbus-serial is CommonJS: its module is the class.
let clientClass: (new () => ModbusRTU) | undefined;
async function newClient(): Promise<ModbusRTU> {
  clientClass ??= (await import('modbus-serial')).default as unknown as new () => ModbusRTU;
  return new clientClass();
}
import { backoffDelay } from '../../runtime/backoff.js';
import type { ModbusChannelConfig, PointConfig } from '../../runtime/config/schema.js';
import { modbusDataType, modbusWriteFn } from '../../runtime/config/modbusRules.js';
import { DeviceError, errorMessage } from '../../runtime/errors.js';
import type { Logger } from '../../runtime/logger.js';
import type { DeviceIo, RawReading } from '../channel/virtualDevice.js';
import { coilValue, decodeRegisters, encodePoint, registerCount } from './codec.js';
import { planReads, splitRequest, width, type PlanPoint, type ReadRequest } from './plan.js';

interface DeviceState { attempt: number; until: number; down: boolean }

const COMM_FAILURE = { quality: 'comm-failure' } as const;
const BAD = { quality: 'bad' } as const;

/** modbus-serial's timeout is not an Error instance: recognise it by name or errno. */
function isTimeout(e: unknown): boolean {
  if (typeof e !== 'object' || e === null) return false;
  const { name, errno } = e as { name?: unknown; errno?: unknown };
  return name === 'TransactionTimedOutError' || errno === 'ETIMEDOUT';
}

/**
 * modbus-serial keeps every transaction (its request, reply buffer and callbacks) in
 * `_transactions`, keyed by a transaction id that wraps only at 256, and never deletes
 * one: per connection up to 256 settled requests stay reachable long enough to reach
 * the old generation, which at 1,000 requests/s meant a major GC every second. A link
 * has one request in flight at a time, so once it settles the table is emptied (a
 * late reply to a timed-out request then finds no transaction and is ignored).
 */
export function forgetSettledTransactions(c: ModbusRTU): void {
  (c as unknown as { _transactions: Record<number, unknown> })._transactions = {};
}

function modbusCode(e: unknown): number | undefined {
  const c = (e as { modbusCode?: unknown }).modbusCode;
  return typeof c === 'number' ? c : undefined;
}

export class ModbusLink implements DeviceIo {
  private client: ModbusRTU | undefined;
  private plan: ReadRequest[] | undefined;
  private planFor: readonly PointConfig[] | undefined;
  private readonly devices = new Map<number, DeviceState>();
  private readonly sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  constructor(private readonly channel: ModbusChannelConfig, private readonly log: Logger, private readonly now: () => number = Date.now) {}

  /** The read plan, as `voltage plan` shows it. */
  static planOf(channel: ModbusChannelConfig): ReadRequest[] {
    return planReads(channel.points.map((p, index) => toPlanPoint(p, index)), channel.maxGap);
  }

  async connect(): Promise<void> {
    await this.close();
    const c = await newClient();
    const ch = this.channel;
    try {
      if (ch.protocol === 'modbus-tcp') await c.connectTCP(ch.host, { port: ch.port });
      // RTU frames (with CRC) over a TCP socket, as serial-to-Ethernet converters pass them: modbus-serial's "telnet" port.
      else if (ch.protocol === 'modbus-rtu-tcp') await c.connectTelnet(ch.host, { port: ch.port });
      else await c.connectRTUBuffered(ch.serial.path, { baudRate: ch.serial.baudRate, parity: ch.serial.parity, dataBits: ch.serial.dataBits, stopBits: ch.serial.stopBits });
    } catch (e) {
      const where = ch.protocol === 'modbus-rtu' ? `serial port ${ch.serial.path}` : `${ch.host}:${ch.port}`;
      throw new DeviceError('LINK_DOWN', `cannot open ${where}: ${errorMessage(e)}`, true, { channel: ch.id });
    }
    c.setTimeout(ch.timeoutMs);
    this.client = c;
  }

  async close(): Promise<void> {
    const c = this.client;
    this.client = undefined;
    if (c?.isOpen) await new Promise<void>((r) => c.close(() => r()));
  }

  private linkOrThrow(): ModbusRTU {
    const c = this.client;
    if (!c || !c.isOpen) throw new DeviceError('LINK_DOWN', `channel ${this.channel.id}: the link is closed`, true, { channel: this.channel.id });
    return c;
  }

  private async request<T>(unit: number, run: (c: ModbusRTU) => Promise<T>): Promise<T> {
    let lastError: unknown;
    for (let attempt = 0; attempt <= this.channel.retries; attempt++) {
      const c = this.linkOrThrow();
      c.setID(unit);
      try {
        const out = await run(c);
        if (this.channel.interRequestDelayMs > 0) await this.sleep(this.channel.interRequestDelayMs);
        return out;
      } catch (e) {
        lastError = e;
        if (!isTimeout(e)) break;
        if (!this.client?.isOpen) break;
      } finally {
        forgetSettledTransactions(c);
      }
    }
    if (!this.client?.isOpen) throw new DeviceError('LINK_DOWN', `channel ${this.channel.id}: link dropped (${errorMessage(lastError)})`, true, { channel: this.channel.id });
    throw lastError;
  }

  private async readBlock(r: ReadRequest): Promise<number[]> {
    return this.request(r.unit, async (c) => {
      switch (r.fn) {
        case 1: return (await c.readCoils(r.address, r.count)).data.slice(0, r.count).map(Number);
        case 2: return (await c.readDiscreteInputs(r.address, r.count)).data.slice(0, r.count).map(Number);
        case 3: return (await c.readHoldingRegisters(r.address, r.count)).data;
        case 4: return (await c.readInputRegisters(r.address, r.count)).data;
      }
    });
  }

  async read(points: readonly PointConfig[], now: number): Promise<RawReading[]> {
    if (this.planFor !== points) {
      this.plan = planReads(points.map((p, index) => toPlanPoint(p, index)), this.channel.maxGap);
      this.planFor = points;
    }
    const readings: RawReading[] = new Array<RawReading>(points.length).fill(BAD);
    const plan = this.plan!;
    let i = 0;
    while (i < plan.length) {
      const unit = plan[i]!.unit;
      let j = i;
      while (j < plan.length && plan[j]!.unit === unit) j++;
      i = await this.readDevice(unit, plan, i, j, points, readings, now);
    }
    return readings;
  }

  /** Reads one device's requests plan[from..to); returns where the next device starts (splitting grows the plan). */
  private async readDevice(unit: number, plan: ReadRequest[], from: number, to: number, points: readonly PointConfig[], readings: RawReading[], now: number): Promise<number> {
    const st = this.devices.get(unit) ?? { attempt: 0, until: 0, down: false };
    this.devices.set(unit, st);
    const markAll = (q: RawReading) => { for (let k = from; k < to; k++) for (const m of plan[k]!.points) readings[m.index] = q; };
    if (st.until > now) {
      markAll(COMM_FAILURE);
      return to;
    }
    for (let k = from; k < to; k++) {
      const r = plan[k]!;
      try {
        const data = await this.readBlock(r);
        for (const m of r.points) readings[m.index] = decodePoint(points[m.index]!, data, m.offset);
      } catch (e) {
        if (e instanceof DeviceError) throw e;
        if (isTimeout(e)) {
          const delayMs = backoffDelay(this.channel.deviceBackoff, st.attempt);
          st.attempt += 1;
          st.until = this.now() + delayMs;
          if (!st.down) this.log.warn({ unit, delayMs }, `channel ${this.channel.id}: unit ${unit} does not answer; its points are comm-failure, retrying it in ${delayMs} ms`);
          st.down = true;
          markAll(COMM_FAILURE);
          return to;
        }
        if (modbusCode(e) === 2 && r.points.length > 1) {
          const parts = splitRequest(r, (index) => width(toPlanPoint(points[index]!, index)));
          plan.splice(k, 1, ...parts);
          this.log.warn({ unit, address: r.address, count: r.count }, `channel ${this.channel.id}: unit ${unit} refused a coalesced read at ${r.address} (+${r.count}); reading its ${parts.length} points one by one from now on`);
          to += parts.length - 1;
          k -= 1;
          continue;
        }
        this.log.debug({ unit, address: r.address, err: errorMessage(e) }, 'read failed; points marked bad');
        for (const m of r.points) readings[m.index] = BAD;
      }
    }
    if (st.down) this.log.info({ unit }, `channel ${this.channel.id}: unit ${unit} answers again`);
    st.attempt = 0;
    st.until = 0;
    st.down = false;
    return to;
  }

  async readBack(p: PointConfig): Promise<RawReading> {
    const r = planReads([toPlanPoint(p, 0)], 0)[0]!;
    const data = await this.readBlock(r);
    return decodePoint(p, data, 0);
  }

  /** Writes a control/adjustment value (engineering units are converted back with scale and offset). */
  async write(p: PointConfig, value: number): Promise<void> {
    const m = p.modbus!;
    const fn = modbusWriteFn(p);
    await this.request(m.unit, async (c) => {
      switch (fn) {
        case 5: await c.writeCoil(m.address, coilValue(p, value)); return;
        case 15: await c.writeCoils(m.address, [coilValue(p, value)]); return;
        case 6: await c.writeRegister(m.address, encodePoint(p, value)[0]!); return;
        case 16: await c.writeRegisters(m.address, encodePoint(p, value)); return;
        default: throw new DeviceError('NOT_WRITABLE', `point ${p.type}:${p.id} cannot be written`, false);
      }
    });
  }
}

export function toPlanPoint(p: PointConfig, index: number): PlanPoint {
  const m = p.modbus!;
  return { index, unit: m.unit, fn: m.fn, address: m.address, dataType: modbusDataType(p) };
}

function decodePoint(p: PointConfig, data: readonly number[], offset: number): RawReading {
  const m = p.modbus!;
  if (m.fn === 1 || m.fn === 2) return data[offset] ?? BAD;
  const type = modbusDataType(p);
  if (data.length < offset + registerCount(type)) return BAD; // a short reply
  return decodeRegisters(data, offset, type, m.byteOrder, m.bit);
}
