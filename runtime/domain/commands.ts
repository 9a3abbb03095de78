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
