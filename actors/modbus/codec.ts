/**
 * Register codec for Modbus points: the data types of a point and the byte
 * order of multi-register values, both ways. Pure; property-tested for round
 * trips. Registers are unsigned 16-bit numbers as they travel on the wire.
 *
 * Byte orders name the order of the bytes A (most significant) .. D as they
 * arrive in the registers: ABCD big-endian, CDAB word-swapped (common on PLCs),
 * BADC byte-swapped, DCBA little-endian. For 64-bit values the same rule
 * applies to all eight bytes; for 16-bit values only the byte swap matters.
 */
import { modbusAddressSchema, type ModbusPointConfig } from '../../runtime/config/schema.js';
import { modbusDataType, registerCount, type ByteOrder, type DataType } from '../../runtime/config/modbusRules.js';

export { registerCount, type ByteOrder, type DataType };

export const DATA_TYPES: readonly DataType[] = modbusAddressSchema.shape.dataType.unwrap().options;
export const BYTE_ORDERS: readonly ByteOrder[] = modbusAddressSchema.shape.byteOrder.unwrap().options;

/** Puts wire bytes into big-endian order (or back: every transform is its own inverse). */
function reorderInto(bytes: Uint8Array, n: number, order: ByteOrder, out: Uint8Array): void {
  for (let i = 0; i < n; i++) {
    switch (order) {
      case 'ABCD':
        out[i] = bytes[i]!;
        break;
      case 'DCBA':
        out[i] = bytes[n - 1 - i]!;
        break;
      case 'BADC':
        out[i] = bytes[i ^ 1]!;
        break;
      case 'CDAB': {
        const word = i >> 1;
        out[i] = bytes[(n / 2 - 1 - word) * 2 + (i & 1)]!;
        break;
      }
    }
  }
}

// Decoding is on the hot path (every point of every poll): one scratch buffer, no allocation per point.
const wire = new Uint8Array(8);
const ordered = new Uint8Array(8);
const view = new DataView(ordered.buffer);

/** Decodes the value at `offset` of a block of registers; `bit` selects one bit of a 16-bit register. */
export function decodeRegisters(registers: ArrayLike<number>, offset: number, type: DataType, order: ByteOrder, bit?: number): number {
  const count = registerCount(type);
  if (count === 1 && (order === 'ABCD' || order === 'CDAB')) {
    const r = registers[offset]! & 0xffff; // one register: only a byte swap changes it
    if (bit !== undefined) return (r >> bit) & 1;
    return type === 'int16' ? (r << 16) >> 16 : type === 'bool' ? (r !== 0 ? 1 : 0) : r;
  }
  for (let i = 0; i < count; i++) {
    const r = registers[offset + i]! & 0xffff;
    wire[2 * i] = r >> 8;
    wire[2 * i + 1] = r & 0xff;
  }
  reorderInto(wire, count * 2, order, ordered);
  if (bit !== undefined) return (view.getUint16(0) >> bit) & 1;
  switch (type) {
    case 'bool':
      return view.getUint16(0) !== 0 ? 1 : 0;
    case 'int16':
      return view.getInt16(0);
    case 'uint16':
      return view.getUint16(0);
    case 'int32':
      return view.getInt32(0);
    case 'uint32':
      return view.getUint32(0);
    case 'float32':
      return view.getFloat32(0);
    case 'float64':
      return view.getFloat64(0);
  }
}

export class EncodeError extends Error {}

/** Encodes a value into registers in wire order. Integers are range-checked; nothing is silently wrapped. */
export function encodeRegisters(value: number, type: DataType, order: ByteOrder): number[] {
  const count = registerCount(type);
  const bytes = new Uint8Array(count * 2);
  const view = new DataView(bytes.buffer);
  const int = (lo: number, hi: number) => {
    if (!Number.isInteger(value) || value < lo || value > hi) throw new EncodeError(`${value} does not fit ${type} (${lo}..${hi})`);
  };
  switch (type) {
    case 'bool':
      view.setUint16(0, value ? 1 : 0);
      break;
    case 'int16':
      int(-32768, 32767);
      view.setInt16(0, value);
      break;
    case 'uint16':
      int(0, 65535);
      view.setUint16(0, value);
      break;
    case 'int32':
      int(-2147483648, 2147483647);
      view.setInt32(0, value);
      break;
    case 'uint32':
      int(0, 4294967295);
      view.setUint32(0, value);
      break;
    case 'float32':
      if (!Number.isFinite(value)) throw new EncodeError(`${value} is not a finite number`);
      view.setFloat32(0, value);
      break;
    case 'float64':
      if (!Number.isFinite(value)) throw new EncodeError(`${value} is not a finite number`);
      view.setFloat64(0, value);
      break;
  }
  const out = new Uint8Array(count * 2);
  reorderInto(bytes, count * 2, order, out);
  const regs: number[] = [];
  for (let i = 0; i < count; i++) regs.push((out[2 * i]! << 8) | out[2 * i + 1]!);
  return regs;
}

/**
 * The registers that hold `value` (engineering units) of a register point:
 * scale and offset undone, rounded for integer types, in the point's byte order.
 * Used for a device write and by the simulator alike.
 */
export function encodePoint(p: ModbusPointConfig, value: number): number[] {
  const type = modbusDataType(p);
  const raw = (value - p.offset) / p.scale;
  return encodeRegisters(type.startsWith('float') ? raw : Math.round(raw), type, p.modbus.byteOrder);
}

/** Inverse of scale and offset, for a coil: on when the raw value is not 0. */
export function coilValue(p: ModbusPointConfig, value: number): boolean {
  return (value - p.offset) / p.scale !== 0;
}
