/**
 * The built-in simulated device of a `virtual` channel: each point follows a
 * waveform; control and adjustment points hold what is written to them.
 * Fault injection (config `fault`) makes it misbehave on purpose: crash (a
 * fatal error, so the supervisor restarts the channel), drop the link (a
 * transient error, so the channel reconnects), return garbage readings.
 */
import { DeviceError } from '../../runtime/errors.js';
import type { ChannelConfig, PointConfig, SimSpec } from '../../runtime/config/site.js';

/** What a device answers for one point: a number, or something that is not one. */
export type RawReading = number | string;

export interface DeviceIo {
  connect(): Promise<void>;
  /** One reading per point of `points`, same order. */
  read(points: readonly PointConfig[], now: number): Promise<RawReading[]>;
  close(): Promise<void>;
}

type Waveform = (now: number) => number;

function waveform(sim: SimSpec, random: () => number): Waveform {
  switch (sim.kind) {
    case 'sine':
      return (now) => sim.offset + sim.amplitude * Math.sin((2 * Math.PI * now) / sim.periodMs + sim.phase);
    case 'square':
      return (now) => (Math.floor(now / (sim.periodMs / 2)) % 2 === 0 ? sim.high : sim.low);
    case 'constant':
      return () => sim.value;
    case 'counter': {
      let v = sim.start - sim.step;
      return () => {
        v += sim.step;
        if (sim.max !== undefined && v > sim.max) v = sim.start;
        return v;
      };
    }
    case 'random_walk': {
      let v = sim.start;
      return () => {
        v = Math.min(sim.max, Math.max(sim.min, v + (random() * 2 - 1) * sim.step));
        return v;
      };
    }
    default:
      return () => Number.NaN;
  }
}

export class VirtualDevice implements DeviceIo {
  private readonly waves = new Map<PointConfig, Waveform>();
  private readonly held = new Map<PointConfig, number>();
  private polls = 0;
  private linkDropped = false;

  constructor(private readonly channel: ChannelConfig, private readonly random: () => number = Math.random) {
    for (const p of channel.points) {
      if (p.sim) this.waves.set(p, waveform(p.sim, random));
      else this.held.set(p, p.min ?? 0);
    }
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
    const garbage = fault?.garbageRate ?? 0;
    return points.map((p) => {
      const v = this.waves.get(p)?.(now) ?? this.held.get(p) ?? 0;
      return garbage > 0 && this.random() < garbage ? 'ERR' : v;
    });
  }

  async close(): Promise<void> {
    this.linkDropped = true;
  }
}
