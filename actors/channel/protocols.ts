/**
 * The protocols a channel can speak: one table, filled by each protocol's
 * module when it is imported (runtime/protocols.ts imports the built-in ones).
 * A protocol gives the schema of its channels, checks beyond the schema, and
 * the factory of its devices. The channel actor asks this table for a device
 * and never knows a protocol by name; the loader asks it for the schemas, so
 * a channel naming a protocol that is not here is a config error with its
 * position.
 */
import type { z } from 'zod';
import type { Logger } from '../../runtime/logger.js';
import type { ChannelConfig, ChannelVariantSchema } from '../../runtime/config/schema.js';
import { VoltageError } from '../../runtime/errors.js';
import type { Device } from './device.js';

/** What a device factory may use besides its channel. */
export interface DeviceContext {
  readonly log: Logger;
  readonly now: () => number;
}

/** A problem found by a protocol's check, `at` relative to the channel (e.g. ['points', 3, 'modbus', 'bit']). */
export interface ProtocolProblem {
  readonly at: readonly (string | number)[];
  readonly code: string;
  readonly message: string;
}

export interface Protocol<C extends ChannelConfig = ChannelConfig> {
  /** The config of a channel of this protocol; its `protocol` is a literal, the name registered. */
  readonly schema: z.ZodType<C> & z.core.$ZodTypeDiscriminable;
  /** Makes the device of a channel; called on every (re)start of the channel's actor. */
  readonly device: (channel: C, ctx: DeviceContext) => Device;
  /** What the schema cannot check (a point's address range, a waveform it needs). */
  readonly check?: (channel: C) => readonly ProtocolProblem[];
}

/** A protocol as the table keeps it, for any channel the loader parsed with its schema. */
interface Entry {
  readonly schema: ChannelVariantSchema;
  readonly device: (channel: ChannelConfig, ctx: DeviceContext) => Device;
  readonly check: (channel: ChannelConfig) => readonly ProtocolProblem[];
}

const table = new Map<string, Entry>();

export class ProtocolError extends VoltageError {
  constructor(code: 'DUPLICATE_PROTOCOL' | 'UNKNOWN_PROTOCOL', message: string, protocol: string) {
    super('config', code, message, { protocol });
    this.name = 'ProtocolError';
  }
}

/**
 * Adds a protocol. A name is registered once: a second registration is an
 * error, never a silent replacement of the first.
 */
export function registerProtocol<C extends ChannelConfig>(name: string, protocol: Protocol<C>): void {
  if (table.has(name)) throw new ProtocolError('DUPLICATE_PROTOCOL', `protocol '${name}' is registered twice`, name);
  // The table serves channels that the loader parsed with this protocol's schema (it
  // picks the variant by `protocol`), so a channel found under `name` is a C.
  const narrow = (channel: ChannelConfig) => channel as C;
  table.set(name, {
    schema: protocol.schema,
    device: (channel, ctx) => protocol.device(narrow(channel), ctx),
    check: (channel) => protocol.check?.(narrow(channel)) ?? [],
  });
}

/** Removes a protocol (tests that register their own). */
export function unregisterProtocol(name: string): boolean {
  return table.delete(name);
}

export function protocolNames(): string[] {
  return [...table.keys()];
}

/** The schemas of every registered protocol's channels, for the loader. */
export function channelSchemas(): ChannelVariantSchema[] {
  return [...table.values()].map((e) => e.schema);
}

function entry(channel: ChannelConfig): Entry {
  const e = table.get(channel.protocol);
  if (!e)
    throw new ProtocolError(
      'UNKNOWN_PROTOCOL',
      `channel ${channel.id}: no protocol '${channel.protocol}' is registered (known: ${protocolNames().join(', ')})`,
      channel.protocol,
    );
  return e;
}

/** The device of a channel, made by its protocol's factory. */
export function createDevice(channel: ChannelConfig, ctx: DeviceContext): Device {
  return entry(channel).device(channel, ctx);
}

/** Problems of a channel that its protocol finds beyond the schema. */
export function checkChannel(channel: ChannelConfig): readonly ProtocolProblem[] {
  return entry(channel).check(channel);
}
