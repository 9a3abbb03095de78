/**
 * The built-in simulated device of a `virtual` channel: each point follows a
 * waveform; control and adjustment points hold what is written to them.
 * Fault injection (config `fault`) makes it misbehave on purpose: crash (a
 * fatal error, so the supervisor restarts the channel), drop the link (a
 * transient error, so the channel reconnects), return garbage readings.
 */
import { DeviceError } from '../../runtime/errors.js';
import type { PointConfig } from '../../runtime/config/site.js';
import { initialState, sample } from './waveform.js';
import type { VirtualChannelConfig } from '../../runtime/config/schema.js';

/**
 * What a device answers for one point: a number, something that is not one
 * (stored with quality bad), or no answer at all with the reason as a quality.
 */
export type RawReading = number | string | { readonly quality: 'bad' | 'comm-failure' };

export interface DeviceIo {
  /** Opens the link; rejects with a transient DeviceError when it cannot (the channel retries with backoff). */
  connect(): Promise<void>;
  /** One reading per point of `points`, same order. Rejects with a transient DeviceError when the link drops. */
  read(points: readonly PointConfig[], now: number): Promise<RawReading[]>;
  close(): Promise<void>;
  /** Writes a control/adjustment point (engineering units). Rejects with a DeviceError. */
  write(point: PointConfig, value: number): Promise<void>;
  /** Reads one point again, after a write. */
  readBack(point: PointConfig, now: number): Promise<RawReading>;
}

export class VirtualDevice implements DeviceIo {
  private readonly index = new Map<PointConfig, number>();
  /** Per point: the waveform's state, or the value held by a control/adjustment point. */
  private readonly state: Float64Array;
  private polls = 0;
  private linkDropped = false;

  constructor(private readonly channel: VirtualChannelConfig, private readonly random: () => number = Math.random) {
    this.state = new Float64Array(channel.points.length);
    channel.points.forEach((p, i) => {
      this.index.set(p, i);
      this.state[i] = initialState(p.sim, p);
    });
  }

  async connect(): Promise<void> {
    this.linkDropped = false;
  }

  async read(points: readonly PointConfig[], now: number): Promise<RawReading[]> {
    const fault = this.channel.fault;
    this.polls += 1;
    if (fault?.crashAfterPolls !== undefined && this.polls > fault.crashAfterPolls) {
      throw new DeviceError('DEVICE_CRASH', `virtual device ${this.channel.id} crashed after ${fault.crashAfterPolls} polls (fault injection)`, false, { channel: this.channel.id });
    }
    if (this.linkDropped || (fault?.dropAfterPolls !== undefined && this.polls % (fault.dropAfterPolls + 1) === 0)) {
      this.linkDropped = true;
      throw new DeviceError('LINK_DOWN', `virtual device ${this.channel.id}: link dropped (fault injection)`, true, { channel: this.channel.id });
    }
    return this.sampleAll(points, now, fault?.garbageRate ?? 0);
  }

  /** The current readings of `points`, `garbageRate` of them garbled. Not a poll: counts nothing. */
  private sampleAll(points: readonly PointConfig[], now: number, garbageRate: number): RawReading[] {
    return points.map((p) => {
      const i = this.index.get(p) ?? -1;
      if (i < 0) return Number.NaN;
      const v = p.sim ? sample(p.sim, this.state, i, now, this.random) : this.state[i]!;
      return garbageRate > 0 && this.random() < garbageRate ? 'ERR' : v;
    });
  }

  async close(): Promise<void> {
    this.linkDropped = true;
  }

  async write(point: PointConfig, value: number): Promise<void> {
    const i = this.index.get(point);
    if (i === undefined || point.sim) throw new DeviceError('NOT_WRITABLE', `point ${point.type}:${point.id} of virtual channel ${this.channel.id} is not writable`, false);
    if (this.linkDropped) throw new DeviceError('LINK_DOWN', `virtual device ${this.channel.id}: link dropped`, true);
    this.state[i] = value;
  }

  async readBack(point: PointConfig, now: number): Promise<RawReading> {
    if (this.linkDropped) throw new DeviceError('LINK_DOWN', `virtual device ${this.channel.id}: link dropped`, true);
    return this.sampleAll([point], now, 0)[0] ?? Number.NaN;
  }
}
