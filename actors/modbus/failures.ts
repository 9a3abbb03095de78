/**
 * What went wrong on a Modbus request, in the terms every channel speaks
 * (actors/channel/device.ts): modbus-serial's errors, its timeouts and the
 * device's exception codes are recognised here and nowhere else.
 */
import { errorMessage } from '../../runtime/errors.js';
import { DeviceError, type DeviceErrorCode } from '../channel/device.js';

/** modbus-serial's timeout is not an Error instance: recognise it by name or errno. */
export function isTimeout(e: unknown): boolean {
  if (typeof e !== 'object' || e === null) return false;
  const { name, errno } = e as { name?: unknown; errno?: unknown };
  return name === 'TransactionTimedOutError' || errno === 'ETIMEDOUT';
}

/** The exception code of a device's exception reply, when `e` is one. */
export function modbusCode(e: unknown): number | undefined {
  if (typeof e !== 'object' || e === null) return undefined;
  const c = (e as { modbusCode?: unknown }).modbusCode;
  return typeof c === 'number' ? c : undefined;
}

/** The code a failed request reaches the channel with: an exception is REFUSED, no answer TIMEOUT, anything else a BAD_REPLY (CRC, short frame). */
export function failureCode(e: unknown): DeviceErrorCode {
  if (e instanceof DeviceError) return e.code;
  if (modbusCode(e) !== undefined) return 'REFUSED';
  // Some paths of modbus-serial reject with a plain Error whose message says so.
  return isTimeout(e) || /timed out/i.test(errorMessage(e)) ? 'TIMEOUT' : 'BAD_REPLY';
}

/** `e` as a DeviceError (unchanged when it is one already), its message and cause kept. */
export function toDeviceError(e: unknown, channel: string): DeviceError {
  if (e instanceof DeviceError) return e;
  const code = modbusCode(e);
  return new DeviceError(failureCode(e), errorMessage(e), { channel, ...(code !== undefined ? { modbusCode: code } : {}) }, { cause: e });
}
