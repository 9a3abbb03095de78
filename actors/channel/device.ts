/**
 * What a channel actor needs of a device, whatever its protocol: open the
 * link, read every point of the channel, write one, read it back. Protocols
 * (actors/channel/protocols.ts) make devices; the channel actor never knows
 * which protocol it talks to.
 *
 * A device reports trouble in two ways, and the channel acts on each alike for
 * every protocol:
 *  - one point has no usable value: its reading is a quality (`bad`,
 *    `comm-failure`), the other points keep coming;
 *  - the whole device failed: it rejects with a DeviceError whose `code` says
 *    what the channel does (DEVICE_ERROR_EFFECT).
 * Protocol-specific failures (Modbus exceptions, timeouts) are classified by
 * the protocol's own module into these codes; nothing else crosses over.
 */
import type { PointConfig } from '../../runtime/config/schema.js';
import { VoltageError, type ErrorContext } from '../../runtime/errors.js';

/**
 * What a device answers for one point: a number, something that is not one
 * (stored with quality bad), or no answer at all with the reason as a quality.
 */
export type RawReading = number | string | { readonly quality: 'bad' | 'comm-failure' };

export type DeviceErrorCode = 'LINK_DOWN' | 'TIMEOUT' | 'REFUSED' | 'BAD_REPLY' | 'NOT_WRITABLE' | 'DEVICE_CRASH';

/**
 * What the channel does with each code. From a connect or a poll: `reconnect`
 * (backoff, then connect again; the actor lives on) or `fail` (the actor fails
 * and its supervisor restarts it). From a command's write: LINK_DOWN leaves the
 * command pending until the link is back, TIMEOUT ends it as `timeout`, every
 * other code as `failed`.
 */
export const DEVICE_ERROR_EFFECT: Readonly<Record<DeviceErrorCode, 'reconnect' | 'fail'>> = {
  LINK_DOWN: 'reconnect',
  TIMEOUT: 'fail',
  REFUSED: 'fail',
  BAD_REPLY: 'fail',
  NOT_WRITABLE: 'fail',
  DEVICE_CRASH: 'fail',
};

/** Raised by a device. `transient` (read by the channel's machine) follows from the code. */
export class DeviceError extends VoltageError {
  declare readonly code: DeviceErrorCode;
  readonly transient: boolean;
  constructor(code: DeviceErrorCode, message: string, context: ErrorContext = {}, options?: { cause?: unknown }) {
    super('device', code, message, context, options);
    this.name = 'DeviceError';
    this.transient = DEVICE_ERROR_EFFECT[code] === 'reconnect';
  }
}

export function isDeviceError(e: unknown, code?: DeviceErrorCode): e is DeviceError {
  return e instanceof DeviceError && (code === undefined || e.code === code);
}

export interface Device {
  /** Opens the link; rejects with DeviceError LINK_DOWN when it cannot (the channel retries with backoff). */
  connect(): Promise<void>;
  /**
   * One reading per point of `points` (the channel's points, the same array
   * every poll), same order. Rejects with a DeviceError when the whole device failed.
   */
  read(points: readonly PointConfig[], now: number): Promise<RawReading[]>;
  close(): Promise<void>;
  /** Writes a control/adjustment point (engineering units). Rejects with a DeviceError. */
  write(point: PointConfig, value: number): Promise<void>;
  /** Reads one point again, after a write. */
  readBack(point: PointConfig, now: number): Promise<RawReading>;
}
