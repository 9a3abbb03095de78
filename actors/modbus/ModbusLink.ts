/**
 * One Modbus link (TCP, RTU on a serial line, RTU over TCP) with its devices,
 * as the Device of a channel actor. Reads follow the coalesced plan, device
 * by device. The failure of one device never stalls the others:
 *  - no answer (after `retries`): that device is backed off on its own, its
 *    points are marked comm-failure, the others keep their poll rate;
 *  - "illegal data address" on a coalesced read: the read is split into one
 *    per point, for good (remembered), so the good points keep coming;
 *  - another exception, a CRC error or a short reply: the points of that read
 *    are marked bad, the device stays in the poll;
 *  - the link itself drops: DeviceError LINK_DOWN, and the channel's machine
 *    reconnects with backoff;
 *  - nothing on the link answered in SILENT_POLLS_BEFORE_RESET polls that asked
 *    (every device timed out or replied garbage): the link is closed and
 *    reconnected the same way, since a byte stream that lost its framing (a
 *    corrupted reply on TCP) never answers again on its own;
 *  - a write that fails: a DeviceError whose code (failures.ts) tells the
 *    channel how the command ends.
 */
import type { ModbusRTU } from 'modbus-serial/ModbusRTU.js';
import { backoffDelay } from '../../runtime/backoff.js';
import type { ModbusChannelConfig, ModbusPointConfig, PointConfig } from '../../runtime/config/schema.js';
import { modbusDataType, modbusWriteFn } from '../../runtime/config/modbusRules.js';
import { errorMessage } from '../../runtime/errors.js';
import type { Logger } from '../../runtime/logger.js';
import { DeviceError, type Device, type RawReading } from '../channel/device.js';
import { isTimeout, modbusCode, toDeviceError } from './failures.js';
import { coilValue, decodeRegisters, encodePoint, registerCount } from './codec.js';
import { planReads, splitRequest, width, type PlanPoint, type ReadRequest } from './plan.js';

// Loaded when a Modbus channel first connects, so that a site without one does not carry
// modbus-serial and serialport in memory. modbus-serial is CommonJS: its module is the class.
let clientClass: (new () => ModbusRTU) | undefined;
async function newClient(): Promise<ModbusRTU> {
  clientClass ??= (await import('modbus-serial')).default as unknown as new () => ModbusRTU;
  return new clientClass();
}

interface DeviceState {
  attempt: number;
  until: number;
  down: boolean;
}

/** Polls in a row that asked and got no valid frame from any device before the link is reset. */
const SILENT_POLLS_BEFORE_RESET = 2;

const COMM_FAILURE = { quality: 'comm-failure' } as const;
const BAD = { quality: 'bad' } as const;

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

export class ModbusLink implements Device {
  private client: ModbusRTU | undefined;
  /** The channel's points (as the channel passes them back) → where each lives. */
  private readonly typed: Map<PointConfig, ModbusPointConfig>;
  /** The read plan of the points the channel passes (the same array every poll), and where each of them lives. */
  private planned:
    | { readonly points: readonly PointConfig[]; readonly plan: ReadRequest[]; readonly at: readonly (ModbusPointConfig | undefined)[] }
    | undefined;
  private readonly devices = new Map<number, DeviceState>();
  /** This poll: a request was sent, and a frame came back (a reply or a Modbus exception). */
  private asked = false;
  private answered = false;
  private silentPolls = 0;
  private readonly sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  constructor(
    private readonly channel: ModbusChannelConfig,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {
    this.typed = new Map(channel.points.map((p) => [p, p]));
  }

  /** The read plan, as `voltage plan` shows it. */
  static planOf(channel: ModbusChannelConfig): ReadRequest[] {
    return planReads(
      channel.points.map((p, index) => toPlanPoint(p, index)),
      channel.maxGap,
    );
  }

  async connect(): Promise<void> {
    await this.close();
    const c = await newClient();
    const ch = this.channel;
    try {
      if (ch.protocol === 'modbus-tcp') await c.connectTCP(ch.host, { port: ch.port });
      // RTU frames (with CRC) over a TCP socket, as serial-to-Ethernet converters pass them: modbus-serial's "telnet" port.
      else if (ch.protocol === 'modbus-rtu-tcp') await c.connectTelnet(ch.host, { port: ch.port });
      else
        await c.connectRTUBuffered(ch.serial.path, {
          baudRate: ch.serial.baudRate,
          parity: ch.serial.parity,
          dataBits: ch.serial.dataBits,
          stopBits: ch.serial.stopBits,
        });
    } catch (e) {
      const where = ch.protocol === 'modbus-rtu' ? `serial port ${ch.serial.path}` : `${ch.host}:${ch.port}`;
      throw new DeviceError('LINK_DOWN', `cannot open ${where}: ${errorMessage(e)}`, { channel: ch.id });
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
    if (!c?.isOpen) throw new DeviceError('LINK_DOWN', `channel ${this.channel.id}: the link is closed`, { channel: this.channel.id });
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
    if (!this.client?.isOpen)
      throw new DeviceError('LINK_DOWN', `channel ${this.channel.id}: link dropped (${errorMessage(lastError)})`, { channel: this.channel.id });
    throw lastError;
  }

  private async readBlock(r: ReadRequest): Promise<number[]> {
    return this.request(r.unit, async (c) => {
      switch (r.fn) {
        case 1:
          return (await c.readCoils(r.address, r.count)).data.slice(0, r.count).map(Number);
        case 2:
          return (await c.readDiscreteInputs(r.address, r.count)).data.slice(0, r.count).map(Number);
        case 3:
          return (await c.readHoldingRegisters(r.address, r.count)).data;
        case 4:
          return (await c.readInputRegisters(r.address, r.count)).data;
      }
    });
  }

  async read(points: readonly PointConfig[], now: number): Promise<RawReading[]> {
    if (this.planned?.points !== points) {
      // A point that is not this channel's has no address: it stays bad.
      const at = points.map((p) => this.typed.get(p));
      const known = at.flatMap((p, index) => (p ? [toPlanPoint(p, index)] : []));
      this.planned = { points, plan: planReads(known, this.channel.maxGap), at };
    }
    const readings: RawReading[] = new Array<RawReading>(points.length).fill(BAD);
    const { plan, at } = this.planned;
    this.asked = false;
    this.answered = false;
    let i = 0;
    while (i < plan.length) {
      const unit = plan[i]!.unit;
      let j = i;
      while (j < plan.length && plan[j]!.unit === unit) j++;
      i = await this.readDevice(unit, plan, i, j, at, readings, now);
    }
    if (this.asked) this.silentPolls = this.answered ? 0 : this.silentPolls + 1;
    if (this.silentPolls >= SILENT_POLLS_BEFORE_RESET) {
      this.silentPolls = 0;
      this.log.warn(
        { channel: this.channel.id },
        `channel ${this.channel.id}: no device on the link answered in ${SILENT_POLLS_BEFORE_RESET} polls; reconnecting the link (its framing may be lost)`,
      );
      await this.close();
      throw new DeviceError('LINK_DOWN', `channel ${this.channel.id}: no valid answer on the link in ${SILENT_POLLS_BEFORE_RESET} polls`, {
        channel: this.channel.id,
      });
    }
    return readings;
  }

  /** Reads one device's requests plan[from..to); returns where the next device starts (splitting grows the plan). */
  private async readDevice(
    unit: number,
    plan: ReadRequest[],
    from: number,
    to: number,
    at: readonly (ModbusPointConfig | undefined)[],
    readings: RawReading[],
    now: number,
  ): Promise<number> {
    const st = this.devices.get(unit) ?? { attempt: 0, until: 0, down: false };
    this.devices.set(unit, st);
    const markAll = (q: RawReading) => {
      for (let k = from; k < to; k++) for (const m of plan[k]!.points) readings[m.index] = q;
    };
    if (st.until > now) {
      markAll(COMM_FAILURE);
      return to;
    }
    for (let k = from; k < to; k++) {
      const r = plan[k]!;
      this.asked = true;
      try {
        const data = await this.readBlock(r);
        this.answered = true;
        for (const m of r.points) {
          const p = at[m.index];
          readings[m.index] = p ? decodePoint(p, data, m.offset) : BAD;
        }
      } catch (e) {
        if (e instanceof DeviceError) throw e;
        if (isTimeout(e)) {
          const delayMs = backoffDelay(this.channel.deviceBackoff, st.attempt);
          st.attempt += 1;
          st.until = this.now() + delayMs;
          if (!st.down)
            this.log.warn(
              { unit, delayMs },
              `channel ${this.channel.id}: unit ${unit} does not answer; its points are comm-failure, retrying it in ${delayMs} ms`,
            );
          st.down = true;
          markAll(COMM_FAILURE);
          return to;
        }
        if (modbusCode(e) !== undefined) this.answered = true; // an exception is a valid frame
        if (modbusCode(e) === 2 && r.points.length > 1) {
          const parts = splitRequest(r, (index) => {
            const p = at[index];
            return p ? width(toPlanPoint(p, index)) : 1;
          });
          plan.splice(k, 1, ...parts);
          this.log.warn(
            { unit, address: r.address, count: r.count },
            `channel ${this.channel.id}: unit ${unit} refused a coalesced read at ${r.address} (+${r.count}); reading its ${parts.length} points one by one from now on`,
          );
          to += parts.length - 1;
          k -= 1;
          continue;
        }
        this.log.debug({ unit, address: r.address, err: e }, 'read failed; points marked bad');
        for (const m of r.points) readings[m.index] = BAD;
      }
    }
    if (st.down) this.log.info({ unit }, `channel ${this.channel.id}: unit ${unit} answers again`);
    st.attempt = 0;
    st.until = 0;
    st.down = false;
    return to;
  }

  /** Where a point of this channel lives; NOT_WRITABLE for a point it does not have. */
  private addressOf(point: PointConfig): ModbusPointConfig {
    const p = this.typed.get(point);
    if (!p) throw new DeviceError('NOT_WRITABLE', `channel ${this.channel.id} has no point ${point.type}:${point.id}`, { channel: this.channel.id });
    return p;
  }

  async readBack(point: PointConfig): Promise<RawReading> {
    const p = this.addressOf(point);
    const r = planReads([toPlanPoint(p, 0)], 0)[0];
    if (!r) return BAD;
    try {
      return decodePoint(p, await this.readBlock(r), 0);
    } catch (e) {
      throw toDeviceError(e, this.channel.id);
    }
  }

  /** Writes a control/adjustment value (engineering units are converted back with scale and offset). */
  async write(point: PointConfig, value: number): Promise<void> {
    const p = this.addressOf(point);
    const m = p.modbus;
    const fn = modbusWriteFn(p);
    try {
      await this.request(m.unit, async (c) => {
        switch (fn) {
          case 5:
            await c.writeCoil(m.address, coilValue(p, value));
            return;
          case 15:
            await c.writeCoils(m.address, [coilValue(p, value)]);
            return;
          case 6:
            await c.writeRegister(m.address, encodePoint(p, value)[0] ?? 0);
            return;
          case 16:
            await c.writeRegisters(m.address, encodePoint(p, value));
            return;
          default:
            throw new DeviceError('NOT_WRITABLE', `point ${p.type}:${p.id} cannot be written`, { channel: this.channel.id });
        }
      });
    } catch (e) {
      throw toDeviceError(e, this.channel.id);
    }
  }
}

export function toPlanPoint(p: ModbusPointConfig, index: number): PlanPoint {
  const m = p.modbus;
  return { index, unit: m.unit, fn: m.fn, address: m.address, dataType: modbusDataType(p) };
}

function decodePoint(p: ModbusPointConfig, data: readonly number[], offset: number): RawReading {
  const m = p.modbus;
  if (m.fn === 1 || m.fn === 2) return data[offset] ?? BAD;
  const type = modbusDataType(p);
  if (data.length < offset + registerCount(type)) return BAD; // a short reply
  return decodeRegisters(data, offset, type, m.byteOrder, m.bit);
}
