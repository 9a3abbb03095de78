/**
 * The telemetry vocabulary shared by actors, the gateway and the Redis layer:
 * qualities, samples, stored values. Pure types and rules, no I/O, so actors
 * import them without importing the Redis wrapper.
 */
import type { PointType } from '../config/site.js';

export type Quality = 'good' | 'stale' | 'bad' | 'comm-failure';
export const QUALITIES: readonly Quality[] = ['good', 'stale', 'bad', 'comm-failure'];

export interface PointSample {
  readonly type: PointType;
  readonly id: number;
  /** null: no usable value this time; only the quality is written. */
  readonly value: number | null;
  /**
   * null: unchanged since this channel last sent it, so not written again (c2m in
   * lua/telemetry.lua). A channel sends a quality whenever it changes, and a value
   * only with quality good.
   */
  readonly quality: Quality | null;
}

export interface C2mResult {
  readonly points: number;
  readonly models: number;
  readonly outboxDropped: number;
}

export interface ModelValue {
  readonly name: string;
  readonly value: number | null;
  readonly quality: Quality;
}

export interface ValueRecord {
  readonly value: number | null;
  readonly ts: number | null;
  readonly quality: Quality | null;
}

/** The outbox: its entries, its size in bytes (estimated after trims), what its bound dropped, and each consumer group's backlog. */
export interface OutboxStats {
  readonly length: number;
  readonly bytes: number;
  readonly dropped: number;
  readonly groups: ReadonlyArray<{ readonly name: string; readonly pending: number; readonly lag: number | null }>;
}

/**
 * A consumer group's backlog, as the product reports it (a cloud link's `lag`, its backlog bound): the
 * entries it has not acknowledged, unread (0 when Redis cannot tell) and pending.
 */
export function groupBacklog(g: OutboxStats['groups'][number]): number {
  return (g.lag ?? 0) + g.pending;
}

/** Numbers are written with fixed precision (DESIGN.md §4). */
export function formatValue(v: number): string {
  return v.toFixed(6);
}
