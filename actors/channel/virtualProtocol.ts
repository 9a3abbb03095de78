/**
 * The `virtual` protocol: a simulated device per channel (virtualDevice.ts),
 * each point following its waveform. Registered when imported.
 */
import { virtualChannelSchema, type VirtualChannelConfig } from '../../runtime/config/schema.js';
import { registerProtocol, type ProtocolProblem } from './protocols.js';
import { VirtualDevice } from './virtualDevice.js';
import { checkWaveforms } from './waveform.js';

/** Measurements and signals of a virtual channel come from a waveform; without one they would have no value. */
function checkVirtual(channel: VirtualChannelConfig): ProtocolProblem[] {
  const out = checkWaveforms(channel.points);
  channel.points.forEach((p, pi) => {
    if ((p.type === 'm' || p.type === 's') && !p.sim)
      out.push({ at: ['points', pi], code: 'MISSING_KEY', message: `point ${p.type}:${p.id} of virtual channel '${channel.id}' needs a 'sim' waveform` });
  });
  return out;
}

registerProtocol('virtual', {
  schema: virtualChannelSchema,
  device: (channel) => new VirtualDevice(channel),
  check: checkVirtual,
});
