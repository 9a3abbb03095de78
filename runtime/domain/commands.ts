/** A control command as it is recorded and as its channel receives it (see lua/commands.lua). */
import type { PointType } from '../config/site.js';
import type { CommandStatus } from '../../machines/commandMachine.js';

export type { CommandStatus };

export interface CommandRecord {
  readonly id: string;
  readonly model: string;
  readonly name: string;
  readonly channel: string;
  readonly value: number;
  /** `lost`: this process accepted it, and Redis lost its record (FLUSHALL, a restart without persistence) before it could be read. */
  readonly status: CommandStatus | 'lost';
  readonly message: string;
  readonly source: string;
  readonly createdAt: number;
  readonly updatedAt: number;
  readonly deadline: number;
  readonly readback: number | null;
}

/** One event of a command's history (audit:commands): accepted, then its end. */
export interface CommandEvent {
  readonly event: string;
  readonly who: string;
  readonly value: number;
  /** Epoch ms. */
  readonly at: number;
  /** Why it ended as it did (its end only). */
  readonly message?: string;
}

/** A command's history from the audit stream's entries (whose fields are strings), numbers as numbers. */
export function commandEvent(f: Readonly<Record<string, string>>): CommandEvent {
  return {
    event: f.event ?? '',
    who: f.who ?? '',
    value: Number(f.value),
    at: Number(f.at),
    ...(f.message ? { message: f.message } : {}),
  };
}

/** One entry of a channel's command stream. */
export interface CommandEntry {
  readonly entryId: string;
  readonly id: string;
  readonly type: PointType;
  readonly point: number;
  readonly value: number;
  readonly deadline: number;
}

/** How a command ended, as its channel commits it. */
export type CommandOutcome = Exclude<CommandStatus, 'pending'>;
