/**
 * The built-in simulated device of a `virtual` channel: each point follows a
 * waveform; control and adjustment points hold what is written to them.
 * Fault injection (config `fault`) makes it misbehave on purpose: crash (a
 * fatal error, so the supervisor restarts the channel), drop the link (a
 * transient error, so the channel reconnects), return garbage readings.
 */
import type { PointConfig, VirtualChannelConfig } from '../../runtime/config/schema.js';
import { DeviceError, type Device, type RawReading } from './device.js';
import { initialState, sample } from './waveform.js';

export class VirtualDevice implements Device {
  /**
   * A point (as the channel passes it) → its index, made when first needed: a poll of the
   * channel's own points reads them by position (no entry per point kept for it).
   */
  private index: Map<PointConfig, number> | undefined;
  /** Per point: the waveform's state, or the value held by a control/adjustment point. */
  private readonly state: Float64Array;
  private polls = 0;
  private linkDropped = false;

  constructor(
    private readonly channel: VirtualChannelConfig,
    private readonly random: () => number = Math.random,
  ) {
    this.state = new Float64Array(channel.points.length);
    channel.points.forEach((p, i) => {
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
      throw new DeviceError('DEVICE_CRASH', `virtual device ${this.channel.id} crashed after ${fault.crashAfterPolls} polls (fault injection)`, {
        channel: this.channel.id,
      });
    }
    if (this.linkDropped || (fault?.dropAfterPolls !== undefined && this.polls % (fault.dropAfterPolls + 1) === 0)) {
      this.linkDropped = true;
      throw new DeviceError('LINK_DOWN', `virtual device ${this.channel.id}: link dropped (fault injection)`, { channel: this.channel.id });
    }
    return this.sampleAll(points, now, fault?.garbageRate ?? 0);
  }

  /** The current readings of `points`, `garbageRate` of them garbled. Not a poll: counts nothing. */
  private sampleAll(points: readonly PointConfig[], now: number, garbageRate: number): RawReading[] {
    const own = points === this.channel.points;
    return points.map((p, k) => {
      const i = own ? k : this.indexOf(p);
      if (i === undefined) return Number.NaN;
      const sim = this.channel.points[i]!.sim;
      const v = sim ? sample(sim, this.state, i, now, this.random) : this.state[i]!;
      return garbageRate > 0 && this.random() < garbageRate ? 'ERR' : v;
    });
  }

  private indexOf(point: PointConfig): number | undefined {
    this.index ??= new Map(this.channel.points.map((p, i) => [p, i]));
    return this.index.get(point);
  }

  async close(): Promise<void> {
    this.linkDropped = true;
  }

  async write(point: PointConfig, value: number): Promise<void> {
    const i = this.indexOf(point);
    if (i === undefined || this.channel.points[i]!.sim)
      throw new DeviceError('NOT_WRITABLE', `point ${point.type}:${point.id} of virtual channel ${this.channel.id} is not writable`);
    if (this.linkDropped) throw new DeviceError('LINK_DOWN', `virtual device ${this.channel.id}: link dropped`);
    this.state[i] = value;
  }

  async readBack(point: PointConfig, now: number): Promise<RawReading> {
    if (this.linkDropped) throw new DeviceError('LINK_DOWN', `virtual device ${this.channel.id}: link dropped`);
    return this.sampleAll([point], now, 0)[0] ?? Number.NaN;
  }
}
