/**
 * A simulated Modbus device: four register banks and fault modes. Served over
 * TCP or RTU by actors/modbus/server.ts; driven by `voltage sim` and the tests.
 */
export type Fault =
  | { readonly kind: 'none' }
  | { readonly kind: 'no-answer' }
  | { readonly kind: 'exception'; readonly code: number }
  | { readonly kind: 'slow'; readonly delayMs: number }
  | { readonly kind: 'drop' };

export const EXCEPTION = { illegalFunction: 1, illegalAddress: 2, illegalValue: 3, deviceFailure: 4 } as const;

export class SimDevice {
  readonly coils = new Uint8Array(65536);
  readonly discrete = new Uint8Array(65536);
  readonly holding = new Uint16Array(65536);
  readonly input = new Uint16Array(65536);
  fault: Fault = { kind: 'none' };
  requests = 0;
  /** Address ranges [from, to) per function code that answer "illegal data address". */
  readonly holes: Array<{ fn: number; from: number; to: number }> = [];
  /**
   * Called before a read of `count` registers or bits at `address` with read
   * function `fn` (1-4) is answered: `voltage sim` brings the simulated points
   * there up to date, so that only what is read is computed, when it is read.
   */
  beforeRead: ((fn: number, address: number, count: number) => void) | undefined;

  constructor(readonly unit: number) {}

  inHole(fn: number, address: number, count: number): boolean {
    const readFn = fn === 5 || fn === 15 ? 1 : fn === 6 || fn === 16 ? 3 : fn;
    return this.holes.some((h) => h.fn === readFn && address < h.to && address + count > h.from);
  }
}

export type Reply =
  | { readonly kind: 'pdu'; readonly pdu: Buffer }
  | { readonly kind: 'none' }
  | { readonly kind: 'drop' }
  | { readonly kind: 'delay'; readonly ms: number; readonly reply: Reply };

function exception(fn: number, code: number): Buffer {
  return Buffer.from([fn | 0x80, code]);
}

/** Answers one request PDU: pure apart from the device's banks. */
export function handlePdu(dev: SimDevice, pdu: Buffer): Reply {
  dev.requests += 1;
  const f = dev.fault;
  if (f.kind === 'no-answer') return { kind: 'none' };
  if (f.kind === 'drop') return { kind: 'drop' };
  const fn = pdu[0] ?? 0;
  const answer = (): Reply => {
    if (f.kind === 'exception') return { kind: 'pdu', pdu: exception(fn, f.code) };
    if (pdu.length < 5) return { kind: 'pdu', pdu: exception(fn, EXCEPTION.illegalValue) };
    const address = pdu.readUInt16BE(1);
    const qty = pdu.readUInt16BE(3);
    if (fn >= 1 && fn <= 4) dev.beforeRead?.(fn, address, qty);
    switch (fn) {
      case 1:
      case 2: {
        if (qty < 1 || qty > 2000) return { kind: 'pdu', pdu: exception(fn, EXCEPTION.illegalValue) };
        if (address + qty > 65536 || dev.inHole(fn, address, qty)) return { kind: 'pdu', pdu: exception(fn, EXCEPTION.illegalAddress) };
        const bank = fn === 1 ? dev.coils : dev.discrete;
        const bytes = Math.ceil(qty / 8);
        const out = Buffer.alloc(2 + bytes);
        out[0] = fn;
        out[1] = bytes;
        for (let i = 0; i < qty; i++) if (bank[address + i]) out[2 + (i >> 3)]! |= 1 << (i & 7);
        return { kind: 'pdu', pdu: out };
      }
      case 3:
      case 4: {
        if (qty < 1 || qty > 125) return { kind: 'pdu', pdu: exception(fn, EXCEPTION.illegalValue) };
        if (address + qty > 65536 || dev.inHole(fn, address, qty)) return { kind: 'pdu', pdu: exception(fn, EXCEPTION.illegalAddress) };
        const bank = fn === 3 ? dev.holding : dev.input;
        const out = Buffer.alloc(2 + qty * 2);
        out[0] = fn;
        out[1] = qty * 2;
        for (let i = 0; i < qty; i++) out.writeUInt16BE(bank[address + i]!, 2 + 2 * i);
        return { kind: 'pdu', pdu: out };
      }
      case 5: {
        if (qty !== 0xff00 && qty !== 0) return { kind: 'pdu', pdu: exception(fn, EXCEPTION.illegalValue) };
        if (dev.inHole(fn, address, 1)) return { kind: 'pdu', pdu: exception(fn, EXCEPTION.illegalAddress) };
        dev.coils[address] = qty === 0xff00 ? 1 : 0;
        return { kind: 'pdu', pdu: Buffer.from(pdu.subarray(0, 5)) };
      }
      case 6: {
        if (dev.inHole(fn, address, 1)) return { kind: 'pdu', pdu: exception(fn, EXCEPTION.illegalAddress) };
        dev.holding[address] = qty;
        return { kind: 'pdu', pdu: Buffer.from(pdu.subarray(0, 5)) };
      }
      case 15:
      case 16: {
        const byteCount = pdu[5] ?? 0;
        const max = fn === 15 ? 1968 : 123;
        if (qty < 1 || qty > max || pdu.length < 6 + byteCount || byteCount !== (fn === 15 ? Math.ceil(qty / 8) : qty * 2)) {
          return { kind: 'pdu', pdu: exception(fn, EXCEPTION.illegalValue) };
        }
        if (address + qty > 65536 || dev.inHole(fn, address, qty)) return { kind: 'pdu', pdu: exception(fn, EXCEPTION.illegalAddress) };
        for (let i = 0; i < qty; i++) {
          if (fn === 15) dev.coils[address + i] = (pdu[6 + (i >> 3)]! >> (i & 7)) & 1;
          else dev.holding[address + i] = pdu.readUInt16BE(6 + 2 * i);
        }
        return { kind: 'pdu', pdu: Buffer.from(pdu.subarray(0, 5)) };
      }
      default:
        return { kind: 'pdu', pdu: exception(fn, EXCEPTION.illegalFunction) };
    }
  };
  const reply = answer();
  return f.kind === 'slow' ? { kind: 'delay', ms: f.delayMs, reply } : reply;
}
