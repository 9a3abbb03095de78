/**
 * One evaluation of a rule over the latest values of its inputs: what the
 * inputs are, whether any is not good (then the rule is blocked and the
 * condition is not computed: a missing value is never read as 0), the
 * condition, and the values its actions would send. Pure: the rule actor runs
 * it on a trigger, and the dry run of the API returns it as it is.
 */
import type { RuleAction, RuleDef } from '../config/site.js';
import type { Quality } from './telemetry.js';
import type { RuleEvent } from '../../machines/ruleMachine.js';

export interface InputValue {
  readonly value: number | null;
  readonly quality: Quality | null;
}

export interface PlannedAction {
  readonly kind: RuleAction['kind'];
  readonly model: string;
  readonly name: string;
  /** null: the value could not be computed (not a finite number); the action is skipped. */
  readonly value: number | null;
}

export interface Evaluation {
  readonly inputs: Readonly<Record<string, { value: number | null; quality: Quality | 'missing' }>>;
  /** Why the rule cannot be evaluated (an input missing or not good); null when it can. */
  readonly blocked: string | null;
  readonly condition: boolean | null;
}

export function evaluateRule(def: RuleDef, latest: (ref: string) => InputValue | undefined): Evaluation {
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
  const c = def.when.evaluate((ref) => inputs[ref]?.value ?? undefined);
  if (!Number.isFinite(c)) return { inputs, blocked: `the condition is not a number (${c})`, condition: null };
  return { inputs, blocked: null, condition: c !== 0 };
}

/** The event an evaluation gives the rule machine. */
export function eventOf(e: Evaluation, now: number): RuleEvent {
  return e.blocked !== null ? { type: 'BLOCK', reason: e.blocked, now } : { type: 'CONDITION', value: e.condition === true, now };
}

/** The values the actions of one branch would send, computed from the same inputs. */
export function planActions(actions: readonly RuleAction[], e: Evaluation): PlannedAction[] {
  return actions.map((a) => {
    const v = a.value.evaluate((ref) => e.inputs[ref]?.value ?? undefined);
    return { kind: a.kind, model: a.model, name: a.name, value: Number.isFinite(v) ? v : null };
  });
}
