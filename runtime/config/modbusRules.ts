/**
 * What `voltage validate` checks of a Modbus point beyond its schema: that
 * it fits the address space, that its data type suits its function, and that
 * a control or adjustment point can be written the way it is read.
 */
import type { ModbusAddress, ModbusPointConfig } from './schema.js';

export type DataType = NonNullable<ModbusAddress['dataType']>;
export type ByteOrder = ModbusAddress['byteOrder'];

/** 16-bit registers a value of each data type takes: the one table the codec, the plan and these rules read. */
export const REGISTERS: Readonly<Record<DataType, number>> = { bool: 1, int16: 1, uint16: 1, int32: 2, uint32: 2, float32: 2, float64: 4 };

export function registerCount(type: DataType): number {
  return REGISTERS[type];
}

export interface RuleProblem {
  readonly at: readonly string[];
  readonly code: string;
  readonly message: string;
}

/** The data type a point is read as, with the defaults applied. */
export function modbusDataType(p: ModbusPointConfig): DataType {
  const m = p.modbus;
  return m.dataType ?? (m.fn === 1 || m.fn === 2 ? 'bool' : 'uint16');
}

/** The write function of a control/adjustment point, with the defaults applied. */
export function modbusWriteFn(p: ModbusPointConfig): 5 | 6 | 15 | 16 | undefined {
  const m = p.modbus;
  if (m.writeFn) return m.writeFn;
  if (m.fn === 1) return 5;
  if (m.fn === 3) return REGISTERS[modbusDataType(p)] === 1 ? 6 : 16;
  return undefined;
}

export function checkModbusPoint(p: ModbusPointConfig): RuleProblem[] {
  const m = p.modbus;
  const out: RuleProblem[] = [];
  const type = modbusDataType(p);
  const bits = m.fn === 1 || m.fn === 2;
  if (bits && type !== 'bool')
    out.push({ at: ['modbus', 'dataType'], code: 'INVALID_VALUE', message: `function ${m.fn} reads bits; dataType must be bool, not ${type}` });
  const width = bits ? 1 : REGISTERS[type];
  if (m.address + width > 65536)
    out.push({ at: ['modbus', 'address'], code: 'OUT_OF_RANGE', message: `a ${type} at address ${m.address} ends past the last address 65535` });
  if (m.bit !== undefined && (bits || width !== 1))
    out.push({ at: ['modbus', 'bit'], code: 'INVALID_VALUE', message: 'bit selects one bit of a 16-bit register (function 3 or 4, a 16-bit dataType)' });
  const writable = p.type === 'c' || p.type === 'a';
  if (!writable && m.writeFn !== undefined)
    out.push({ at: ['modbus', 'writeFn'], code: 'INVALID_VALUE', message: 'only control (c) and adjustment (a) points are written' });
  if (writable) {
    const w = modbusWriteFn(p);
    if (w === undefined)
      out.push({
        at: ['modbus', 'fn'],
        code: 'INVALID_VALUE',
        message: `function ${m.fn} is read-only; a ${p.type === 'c' ? 'control' : 'adjustment'} point must be read with function 1 (coils) or 3 (holding registers)`,
      });
    else if ((w === 5 || w === 15) !== (m.fn === 1))
      out.push({ at: ['modbus', 'writeFn'], code: 'INVALID_VALUE', message: `write function ${w} does not write what function ${m.fn} reads` });
    else if (w === 6 && width !== 1)
      out.push({ at: ['modbus', 'writeFn'], code: 'INVALID_VALUE', message: `write function 6 writes one register; a ${type} needs ${width} (use 16)` });
    if (m.bit !== undefined) out.push({ at: ['modbus', 'bit'], code: 'INVALID_VALUE', message: 'a single bit of a register cannot be written on its own' });
  }
  return out;
}
