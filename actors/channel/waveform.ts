/**
 * Waveforms of simulated points (`sim` in the config), shared by the virtual
 * device of a `virtual` channel and by `voltage sim`'s Modbus devices.
 */
import type { PointConfig, SimSpec } from '../../runtime/config/site.js';
import type { ProtocolProblem } from './protocols.js';

/**
 * The value of point i at `now`. Waveforms are evaluated from the spec and one
 * number of state per point (counters, random walks), not from a closure per
 * point: a 100k-point site would otherwise hold 100k closures and contexts.
 */
export function sample(sim: SimSpec, state: Float64Array, i: number, now: number, random: () => number): number {
  switch (sim.kind) {
    case 'sine':
      return sim.offset + sim.amplitude * Math.sin((2 * Math.PI * now) / sim.periodMs + sim.phase);
    case 'square':
      return Math.floor(now / (sim.periodMs / 2)) % 2 === 0 ? sim.high : sim.low;
    case 'constant':
      return sim.value;
    case 'counter': {
      let v = state[i]! + sim.step;
      if (sim.max !== undefined && v > sim.max) v = sim.start;
      state[i] = v;
      return v;
    }
    case 'random_walk': {
      const v = Math.min(sim.max, Math.max(sim.min, state[i]! + (random() * 2 - 1) * sim.step));
      state[i] = v;
      return v;
    }
    default:
      return Number.NaN;
  }
}

export function initialState(sim: SimSpec | undefined, p: PointConfig): number {
  if (!sim) return p.min ?? 0;
  if (sim.kind === 'counter') return sim.start - sim.step;
  if (sim.kind === 'random_walk') return sim.start;
  return 0;
}

/** What the schema cannot check of the waveforms of a channel's points; paths relative to the channel. */
export function checkWaveforms(points: readonly { readonly type: string; readonly id: number; readonly sim?: SimSpec | undefined }[]): ProtocolProblem[] {
  const out: ProtocolProblem[] = [];
  points.forEach((p, pi) => {
    if (p.sim?.kind === 'random_walk' && p.sim.min >= p.sim.max)
      out.push({ at: ['points', pi, 'sim', 'min'], code: 'OUT_OF_RANGE', message: `point ${p.type}:${p.id}: random_walk min must be below max` });
  });
  return out;
}
