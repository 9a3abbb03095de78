/**
 * The Modbus protocols (`modbus-tcp`, `modbus-rtu-tcp`, `modbus-rtu`): one
 * ModbusLink per channel. Registered when imported. Code that is about Modbus
 * only (`voltage sim`, `voltage plan`) picks its channels with isModbusChannel.
 */
import { checkModbusPoint } from '../../runtime/config/modbusRules.js';
import { modbusChannelSchemas, type ChannelConfig, type ModbusChannelConfig } from '../../runtime/config/schema.js';
import { registerProtocol, type ProtocolProblem } from '../channel/protocols.js';
import { checkWaveforms } from '../channel/waveform.js';
import { ModbusLink } from './ModbusLink.js';

const MODBUS_PROTOCOLS: ReadonlySet<string> = new Set(modbusChannelSchemas.map((s) => s.shape.protocol.value));

/** A channel the loader parsed as one of the Modbus protocols. */
export function isModbusChannel(channel: ChannelConfig): channel is ModbusChannelConfig {
  return MODBUS_PROTOCOLS.has(channel.protocol);
}

function checkModbus(channel: ModbusChannelConfig): ProtocolProblem[] {
  const out = checkWaveforms(channel.points);
  channel.points.forEach((p, pi) => {
    for (const m of checkModbusPoint(p))
      out.push({ at: ['points', pi, ...m.at], code: m.code, message: `point ${p.type}:${p.id} of channel '${channel.id}': ${m.message}` });
  });
  return out;
}

for (const schema of modbusChannelSchemas) {
  registerProtocol(schema.shape.protocol.value, {
    schema,
    device: (channel, ctx) => new ModbusLink(channel, ctx.log, ctx.now),
    check: checkModbus,
  });
}
