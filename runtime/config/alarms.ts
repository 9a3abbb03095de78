/**
 * The `alarms` section of a site config, the `alarms` block of a template (each
 * instance of the template gets them, with ids under the model's), and the
 * site-wide alarm policy (chattering, flood, first-out grouping).
 *
 * A condition names exactly one test (above, below, equals, expr, quality,
 * staleMs); the message for a mistake says which tests there are and which
 * keys belong to which. References (model, point, names in `expr` and
 * `suppressWhen`) are checked where the site is resolved, not here.
 */
import { z } from 'zod';
import { SEVERITIES } from '../../machines/alarmMachine.js';
import type { ConditionSpec, PointQuality } from '../../machines/alarmCondition.js';

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const WORD = /^[A-Za-z0-9_-]+$/;
/** `bess1.overtemp`: words of letters, digits, _ and -, joined by dots. */
export const ALARM_ID_PATTERN = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;

const positiveMs = z.number().int().positive();
const delayMs = z.number().int().nonnegative();
const modelId = z
  .union([z.string(), z.number().int().nonnegative()])
  .transform((v) => String(v))
  .pipe(z.string().regex(WORD, 'must hold only letters, digits, _ and -'));

const qualitySchema = z.enum(['stale', 'bad', 'comm-failure']);

const TESTS = ['above', 'below', 'equals', 'expr', 'quality', 'staleMs'] as const;
type Test = (typeof TESTS)[number];

export const whenSchema = z
  .strictObject({
    point: z
      .string()
      .regex(NAME, 'must be a measurement name of the model (a letter or _, then letters, digits and _)')
      .optional()
      .describe("the measurement (or calculated value) of the alarm's model that the test reads"),
    above: z.number().optional().describe('raised above this value'),
    below: z.number().optional().describe('raised below this value'),
    equals: z.union([z.number(), z.boolean()]).optional().describe('raised while a signal point has this value (true = 1, false = 0)'),
    expr: z.string().min(1).optional().describe("raised while this calculation-language expression is true (other models' values as model.name)"),
    quality: z
      .union([qualitySchema, z.array(qualitySchema).min(1)])
      .optional()
      .describe("raised while the point's quality is one of these (comm-failure: the device stopped answering)"),
    staleMs: positiveMs.optional().describe('raised when the point had no new value for this long'),
    deadband: z.number().nonnegative().optional().describe('above/below only: the value must come back this far past the limit to clear'),
    onDelayMs: delayMs.default(0).describe('the condition must hold this long before the alarm is raised'),
    offDelayMs: delayMs.default(0).describe('the condition must be gone this long before the alarm clears'),
  })
  .superRefine((w, ctx) => {
    const given = TESTS.filter((t) => w[t] !== undefined);
    if (given.length !== 1) {
      ctx.addIssue({
        code: 'custom',
        message:
          given.length === 0
            ? `a condition needs one test: ${TESTS.join(', ')} (high and low limits on one point are separate alarms)`
            : `a condition has exactly one test, found ${given.join(' and ')} (high and low limits on one point are separate alarms)`,
      });
      return;
    }
    const test: Test = given[0]!;
    if (test === 'expr' && w.point !== undefined)
      ctx.addIssue({ code: 'custom', path: ['point'], message: 'an expr condition names its points inside the expression; remove point' });
    if (test !== 'expr' && w.point === undefined)
      ctx.addIssue({ code: 'custom', path: ['point'], message: `a condition with ${test} needs the point it reads` });
    if (w.deadband !== undefined && test !== 'above' && test !== 'below')
      ctx.addIssue({ code: 'custom', path: ['deadband'], message: `deadband applies to above and below only, not to ${test}` });
  });

const windowSchema = (count: number, windowMs: number) =>
  z.strictObject({
    count: z.number().int().positive().default(count),
    windowMs: positiveMs.default(windowMs),
  });

const alarmFields = {
  when: whenSchema,
  severity: z.enum(SEVERITIES).default('minor'),
  message: z.string().optional().describe('shown to operators; {value}, {limit}, {model}, {id} are filled in'),
  latch: z.boolean().default(false).describe('stays after the condition clears until an operator resets it'),
  reAlarmMs: positiveMs.optional().describe('acknowledged but still active this long: announced again'),
  escalateAfterMs: positiveMs.optional().describe('unacknowledged this long: severity rises one step'),
  suppressWhen: z.string().min(1).optional().describe('suppression by design: an expression on other points, e.g. "bess1.P == 0"'),
  chattering: windowSchema(3, 60_000).optional().describe('raised count times within windowMs marks the alarm chattering (default from alarmPolicy)'),
  enabled: z.boolean().default(true),
};

export const alarmSchema = z.strictObject({
  id: z.string().regex(ALARM_ID_PATTERN, 'must be words of letters, digits, _ and - joined by dots, e.g. bess1.overtemp'),
  model: modelId.describe('the model whose values the condition reads'),
  ...alarmFields,
});

/** In a template: the model is each instance; the id is local and becomes `{model}.{id}`. */
export const templateAlarmSchema = z.strictObject({
  id: z.string().regex(WORD, "must hold only letters, digits, _ and - (an instance's alarm is {model}.{id})"),
  ...alarmFields,
});

export const alarmsSchema = z.array(alarmSchema).default([]);
export const templateAlarmsSchema = z.array(templateAlarmSchema).default([]);

/** Site-wide nuisance handling. */
export const alarmPolicySchema = z.strictObject({
  chattering: windowSchema(3, 60_000).prefault({}),
  flood: windowSchema(10, 600_000).prefault({}).describe('more than count new alarms within windowMs raise the flood indicator'),
  groupWindowMs: positiveMs.default(10_000).describe('alarms arising on one model within this window are grouped under the first'),
});

export type AlarmConfig = z.output<typeof alarmSchema>;
export type TemplateAlarmConfig = z.output<typeof templateAlarmSchema>;
export type AlarmWhen = z.output<typeof whenSchema>;
export type AlarmPolicy = z.output<typeof alarmPolicySchema>;

/** A template's alarms for one instance. */
export function instantiateTemplateAlarms(model: string, alarms: readonly TemplateAlarmConfig[]): AlarmConfig[] {
  return alarms.map((a) => ({ ...a, id: `${model}.${a.id}`, model }));
}

/** What the condition evaluator needs (machines/alarmCondition.ts); expr conditions are evaluated by the actor. */
export function conditionSpec(w: AlarmWhen): ConditionSpec | { readonly kind: 'expr'; readonly expr: string } {
  if (w.above !== undefined) return { kind: 'above', limit: w.above, deadband: w.deadband ?? 0 };
  if (w.below !== undefined) return { kind: 'below', limit: w.below, deadband: w.deadband ?? 0 };
  if (w.equals !== undefined) return { kind: 'equals', value: typeof w.equals === 'boolean' ? Number(w.equals) : w.equals };
  if (w.quality !== undefined) return { kind: 'quality', qualities: (Array.isArray(w.quality) ? w.quality : [w.quality]) as PointQuality[] };
  if (w.staleMs !== undefined) return { kind: 'stale', staleMs: w.staleMs };
  return { kind: 'expr', expr: w.expr ?? '' };
}
