/**
 * One evaluation of a rule over the latest values of its inputs: what the
 * inputs are, whether any is not good (then the rule is blocked and the
 * condition is not computed: a missing value is never read as 0), the
 * condition, and the values its actions would send. Pure: the rule actor runs
 * it on a trigger, and the dry run of the API returns it as it is.
 */
import { renderMessage, type NotifySeverity, type RuleAction, type RuleDef } from '../config/rules.js';
import type { Scope, WindowScope } from '../expr.js';
import type { Quality } from './telemetry.js';
import type { RuleEvent } from '../../machines/ruleMachine.js';
import { WindowRing } from './window.js';

export interface InputValue {
  readonly value: number | null;
  readonly quality: Quality | null;
}

export type PlannedAction =
  | {
      readonly kind: 'control' | 'set';
      readonly model: string;
      readonly name: string;
      /** null: the value could not be computed (not a finite number); the action is skipped. */
      readonly value: number | null;
    }
  | { readonly kind: 'alarm'; readonly alarm: string; readonly raise: boolean }
  | { readonly kind: 'notify'; readonly message: string; readonly severity: NotifySeverity };

export interface Evaluation {
  readonly inputs: Readonly<Record<string, { value: number | null; quality: Quality | 'missing' }>>;
  /** Why the rule cannot be evaluated (an input missing or not good); null when it can. */
  readonly blocked: string | null;
  readonly condition: boolean | null;
}

/**
 * `windows`: the window functions' values now (RuleInputs.windowScope); none given,
 * a window function reads as missing and the condition is not a number.
 */
export function evaluateRule(def: RuleDef, latest: (ref: string) => InputValue | undefined, windows?: WindowScope): Evaluation {
  const inputs: Record<string, { value: number | null; quality: Quality | 'missing' }> = {};
  const problems: string[] = [];
  for (const ref of def.inputs) {
    const v = latest(ref);
    // A quality that is not good says more than a missing value (a bad reading is stored without one).
    const quality: Quality | 'missing' = v?.quality && v.quality !== 'good' ? v.quality : v === undefined || v.value === null ? 'missing' : 'good';
    inputs[ref] = { value: v?.value ?? null, quality };
    if (quality !== 'good') problems.push(`${ref} is ${quality}`);
  }
  if (problems.length > 0) return { inputs, blocked: problems.join(', '), condition: null };
  const c = def.when.evaluate((ref) => inputs[ref]?.value ?? undefined, windows);
  if (!Number.isFinite(c)) return { inputs, blocked: `the condition is not a number (${c})`, condition: null };
  return { inputs, blocked: null, condition: c !== 0 };
}

/** The event an evaluation gives the rule machine. */
export function eventOf(e: Evaluation, now: number): RuleEvent {
  return e.blocked !== null ? { type: 'BLOCK', reason: e.blocked, now } : { type: 'CONDITION', value: e.condition === true, now };
}

/**
 * The condition when every input is good and it is a number (the value of the CONDITION event evaluateRule
 * would give); undefined otherwise (then evaluateRule says why). Allocates nothing of its own: `value`
 * is `latest`'s value, passed in so that a caller asking 10,000 times a second can keep one. A rule
 * evaluated on every change of its inputs asks this first, to learn whether its step would change
 * anything. The condition reads only the rule's inputs (resolveRules adds each reference it reads).
 */
export function conditionOf(
  def: RuleDef,
  latest: (ref: string) => InputValue | undefined,
  value: Scope,
  windows: WindowScope | undefined,
): boolean | undefined {
  for (const ref of def.inputs) {
    const v = latest(ref);
    if (v === undefined || v.value === null || (v.quality !== null && v.quality !== 'good')) return undefined;
  }
  const c = def.when.evaluate(value, windows);
  return Number.isFinite(c) ? c !== 0 : undefined;
}

/** The values the actions of one branch would send, computed from the same inputs. */
export function planActions(actions: readonly RuleAction[], e: Evaluation, windows?: WindowScope): PlannedAction[] {
  return actions.map((a): PlannedAction => {
    if (a.kind === 'alarm') return { kind: 'alarm', alarm: a.alarm, raise: a.raise };
    if (a.kind === 'notify') return { kind: 'notify', severity: a.severity, message: renderMessage(a.message, (ref) => e.inputs[ref]?.value) };
    const v = a.value.evaluate((ref) => e.inputs[ref]?.value ?? undefined, windows);
    return { kind: a.kind, model: a.model, name: a.name, value: Number.isFinite(v) ? v : null };
  });
}

/**
 * The inputs of one rule as its actor (or `voltage rules test`) sees them: the
 * latest value and quality of each, and a bounded ring of recent good values
 * for each point that a window function reads.
 */
export class RuleInputs {
  /** Changed in place by `update` (one record per input for the rule's life, not one per change). */
  private readonly latest = new Map<string, { value: number | null; quality: Quality | null }>();
  private readonly rings = new Map<string, WindowRing>();

  constructor(def: Pick<RuleDef, 'windows'>) {
    for (const w of def.windows) {
      const r = this.rings.get(w.ref);
      if (!r || r.spanMs < w.ms) this.rings.set(w.ref, new WindowRing(w.ms));
    }
  }

  get(ref: string): InputValue | undefined {
    return this.latest.get(ref);
  }

  has(ref: string): boolean {
    return this.latest.has(ref);
  }

  /** A value or quality seen at `t`; a value that is not good does not enter the windows. */
  set(ref: string, v: InputValue, t: number): void {
    this.update(ref, v.value, v.quality, t);
  }

  /**
   * `set` without an object from the caller; true when the value or the quality differs from
   * the latest (or there was none). What `get` returned earlier is this record: read it before.
   */
  update(ref: string, value: number | null, quality: Quality | null, t: number): boolean {
    const cur = this.latest.get(ref);
    let changed = true;
    if (cur === undefined) this.latest.set(ref, { value, quality });
    else {
      changed = cur.value !== value || cur.quality !== quality;
      cur.value = value;
      cur.quality = quality;
    }
    if (value !== null && (quality === null || quality === 'good')) this.rings.get(ref)?.push(t, value);
    return changed;
  }

  /** The latest value of `ref` (undefined when none), one function for the rule's life. */
  readonly value: Scope = (ref) => this.latest.get(ref)?.value ?? undefined;

  /** The latest value and quality of `ref`, one function for the rule's life. */
  readonly read = (ref: string): InputValue | undefined => this.latest.get(ref);

  /** The window functions over the rings at `now`; undefined when the rule has none (nothing to make per evaluation). */
  windowScope(now: number): WindowScope | undefined {
    if (this.rings.size === 0) return undefined;
    return (fn, ref, ms) => this.rings.get(ref)?.compute(fn, ms, now);
  }

  ringSizes(): Record<string, number> {
    return Object.fromEntries([...this.rings].map(([ref, r]) => [ref, r.size]));
  }
}

/** A sequence's progress as `rule:{id}` keeps it (field `sequence`, JSON): a restart resumes from it. */
export interface SequenceProgress {
  /** How many steps were seen (0: none under way). */
  readonly stage: number;
  /** When the first step was seen (ms; 0 when stage is 0). */
  readonly startedAt: number;
  /** Each step's value at the last evaluation (a rising edge is false here, true now). */
  readonly prev: readonly boolean[];
}

/**
 * A sequence trigger: conditions that must become true (a rising edge: false
 * or unknown before, true now) in their order, all within `withinMs` of the
 * first. At most one step advances per evaluation (two edges seen at once have
 * no order). The first step rising again restarts the window. Its progress is
 * `progress()`, which the rule actor commits with the rule (so a restart
 * resumes a sequence under way) and passes back to the constructor; a
 * progress whose window has passed is dropped (`expire`).
 */
export class SequenceTracker {
  private prev: boolean[];
  private stage = 0;
  private startedAt = 0;

  constructor(
    private readonly steps: number,
    private readonly withinMs: number,
    from?: SequenceProgress,
  ) {
    this.prev = new Array<boolean>(steps).fill(false);
    if (from && from.prev.length === steps && from.stage >= 0 && from.stage < steps) {
      this.prev = [...from.prev];
      this.stage = from.stage;
      this.startedAt = from.stage > 0 ? from.startedAt : 0;
    }
  }

  /** Forgets a sequence under way whose window has passed by `now`; true when it did. */
  expire(now: number): boolean {
    if (this.stage === 0 || now - this.startedAt <= this.withinMs) return false;
    this.stage = 0;
    this.startedAt = 0;
    return true;
  }

  /** The steps' values now (null: an input is not good; nothing advances, the edges are forgotten); true when the sequence completes. */
  step(values: readonly boolean[] | null, now: number): boolean {
    this.expire(now);
    if (values === null) {
      this.prev.fill(false);
      return false;
    }
    const rose = values.map((v, i) => v && !this.prev[i]);
    this.prev = [...values];
    if (this.stage > 0 && rose[this.stage]) {
      this.stage++;
      if (this.stage === this.steps) {
        this.stage = 0;
        this.startedAt = 0;
        return true;
      }
      return false;
    }
    if (rose[0]) {
      this.stage = 1;
      this.startedAt = now;
    }
    return false;
  }

  get progress(): number {
    return this.stage;
  }

  /** What to persist: stage, start and the last values (a copy). */
  snapshot(): SequenceProgress {
    return { stage: this.stage, startedAt: this.startedAt, prev: [...this.prev] };
  }
}

/** A progress as stored: '' when nothing is under way and no step was true (the field is then removed). */
export function sequenceText(p: SequenceProgress): string {
  return p.stage === 0 && !p.prev.includes(true) ? '' : JSON.stringify(p);
}

/** A stored progress (`rule:{id}` field `sequence`), or undefined when absent or not one. */
export function parseSequenceProgress(text: string | undefined): SequenceProgress | undefined {
  if (!text) return undefined;
  try {
    const p = JSON.parse(text) as Partial<SequenceProgress>;
    if (typeof p.stage !== 'number' || typeof p.startedAt !== 'number' || !Array.isArray(p.prev) || !p.prev.every((x) => typeof x === 'boolean'))
      return undefined;
    return { stage: p.stage, startedAt: p.startedAt, prev: p.prev };
  } catch {
    return undefined;
  }
}

/** A sequence rule's steps evaluated now: null when blocked or a step is not a number. */
export function sequenceValues(def: RuleDef, e: Evaluation, windows?: WindowScope): boolean[] | null {
  if (def.event?.kind !== 'sequence' || e.blocked !== null) return null;
  const out: boolean[] = [];
  for (const s of def.event.steps) {
    const v = s.evaluate((ref) => e.inputs[ref]?.value ?? undefined, windows);
    if (!Number.isFinite(v)) return null;
    out.push(v !== 0);
  }
  return out;
}
