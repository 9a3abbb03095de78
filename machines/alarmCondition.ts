/**
 * What happens to a value before the alarm machine sees it: the raw condition
 * (a threshold with its deadband, an equality, the point's quality, staleness),
 * then the on- and off-delays, which turn it into the CONDITION_ON / CONDITION_OFF
 * events of machines/alarmMachine.ts. Also the two nuisance detectors, chattering
 * (one alarm raised too often) and flood (too many alarms at once).
 *
 * Pure functions over plain JSON state: every deadline is an absolute time, so a
 * state written to Redis and read back after a restart continues where it was.
 * Nothing here reads a clock; the caller passes `now`.
 */

export type PointQuality = 'good' | 'stale' | 'bad' | 'comm-failure';

export interface Sample {
  /** null: no usable value (only a quality). */
  readonly value: number | null;
  readonly quality: PointQuality;
  /** When the value was written (ms). */
  readonly ts: number;
}

export type ConditionSpec =
  /** Raised above `limit`; cleared only at or below `limit - deadband`. */
  | { readonly kind: 'above'; readonly limit: number; readonly deadband: number }
  /** Raised below `limit`; cleared only at or above `limit + deadband`. */
  | { readonly kind: 'below'; readonly limit: number; readonly deadband: number }
  | { readonly kind: 'equals'; readonly value: number }
  /** Raised while the point's quality is one of these (comm-failure: the device stopped answering). */
  | { readonly kind: 'quality'; readonly qualities: readonly PointQuality[] }
  /** Raised when no new value came for `staleMs`. */
  | { readonly kind: 'stale'; readonly staleMs: number };

/**
 * The raw condition for one sample. A value that cannot be trusted (no value, or
 * a quality other than good) leaves a value condition as it was: a device that
 * stops answering raises its comm-failure alarm, not a threshold alarm.
 */
export function rawCondition(spec: ConditionSpec, wasActive: boolean, sample: Sample | undefined, now: number): boolean {
  switch (spec.kind) {
    case 'quality':
      return sample !== undefined && spec.qualities.includes(sample.quality);
    case 'stale':
      return sample === undefined || now - sample.ts > spec.staleMs;
    default: {
      if (sample === undefined || sample.value === null || sample.quality !== 'good') return wasActive;
      const v = sample.value;
      if (spec.kind === 'equals') return v === spec.value;
      if (spec.kind === 'above') return wasActive ? v > spec.limit - spec.deadband : v > spec.limit;
      return wasActive ? v < spec.limit + spec.deadband : v < spec.limit;
    }
  }
}

export interface Delays {
  readonly onDelayMs: number;
  readonly offDelayMs: number;
}

export interface DelayState {
  /** The filtered condition: what the alarm machine was last told. */
  readonly active: boolean;
  /** The raw condition last seen. */
  readonly raw: boolean;
  /** Absolute ms at which `raw` becomes `active` if it holds until then; null when nothing is pending. */
  readonly pendingUntil: number | null;
}

export type ConditionChange = 'CONDITION_ON' | 'CONDITION_OFF';

export interface DelayStep {
  readonly state: DelayState;
  readonly change: ConditionChange | null;
}

export const INITIAL_DELAY_STATE: DelayState = { active: false, raw: false, pendingUntil: null };

/**
 * One raw observation at `now`. A raw condition that differs from the filtered one
 * starts a delay (on or off); one that returns before the deadline cancels it, so
 * a glitch shorter than the delay never reaches the machine.
 */
export function stepDelay(state: DelayState, raw: boolean, now: number, delays: Delays): DelayStep {
  if (raw === state.active) return { state: { active: state.active, raw, pendingUntil: null }, change: null };
  const pendingUntil = state.raw === raw && state.pendingUntil !== null ? state.pendingUntil : now + (raw ? delays.onDelayMs : delays.offDelayMs);
  if (now >= pendingUntil) return { state: { active: raw, raw, pendingUntil: null }, change: raw ? 'CONDITION_ON' : 'CONDITION_OFF' };
  return { state: { active: state.active, raw, pendingUntil }, change: null };
}

/** The clock moved: a pending change whose deadline has passed takes effect. */
export function tickDelay(state: DelayState, now: number, delays: Delays): DelayStep {
  return stepDelay(state, state.raw, now, delays);
}

export interface WindowConfig {
  readonly count: number;
  readonly windowMs: number;
}

export const DEFAULT_CHATTERING: WindowConfig = { count: 3, windowMs: 60_000 };
export const DEFAULT_FLOOD: WindowConfig = { count: 10, windowMs: 600_000 };

/**
 * The times of the last few occurrences, newest last, never more than `keep`:
 * enough to tell whether `keep` of them fall within a window, in bounded memory.
 */
function remember(times: readonly number[], now: number, keep: number): number[] {
  const out = [...times, now];
  return out.length > keep ? out.slice(out.length - keep) : out;
}

/** Whether at least `n` of the remembered times fall within the window ending at `now`. */
function atLeastWithin(times: readonly number[], n: number, windowMs: number, now: number): boolean {
  if (n <= 0) return true;
  if (times.length < n) return false;
  return times[times.length - n]! > now - windowMs;
}

/** Chattering: an alarm raised `count` times within `windowMs` (ISA-18.2's nuisance alarm). */
export function recordActivation(times: readonly number[], now: number, cfg: WindowConfig = DEFAULT_CHATTERING): number[] {
  return remember(times, now, cfg.count);
}

export function isChattering(times: readonly number[], now: number, cfg: WindowConfig = DEFAULT_CHATTERING): boolean {
  return atLeastWithin(times, cfg.count, cfg.windowMs, now);
}

/** Flood: more than `count` new alarms (over all alarms of a site) within `windowMs`. */
export function recordNewAlarm(times: readonly number[], now: number, cfg: WindowConfig = DEFAULT_FLOOD): number[] {
  return remember(times, now, cfg.count + 1);
}

export function inFlood(times: readonly number[], now: number, cfg: WindowConfig = DEFAULT_FLOOD): boolean {
  return atLeastWithin(times, cfg.count + 1, cfg.windowMs, now);
}
