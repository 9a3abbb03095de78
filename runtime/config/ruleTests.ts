/**
 * The `ruleTests` section: test cases for the site's rules, run by
 * `voltage rules test` on a simulated clock (runtime/domain/ruleSim.ts), with
 * no Redis and no device. Given point values (and qualities, and alarm state
 * changes) over time, expect these actions at these times.
 */
import { z } from 'zod';
import { SEVERITIES } from '../../machines/alarmMachine.js';
import { durationSchema } from './rules.js';

const ref = z.string().regex(/^[A-Za-z0-9_-]+\.[A-Za-z_][A-Za-z0-9_]*$/, 'must be model.name, e.g. grid.P');
const quality = z.enum(['good', 'stale', 'bad', 'comm-failure']);

const givenSchema = z.strictObject({
  at: durationSchema.describe('from the start of the case'),
  values: z.record(ref, z.number()).optional().describe('model.name: value'),
  quality: z.record(ref, quality).optional().describe('model.name: quality (a value that is not good)'),
  alarm: z.record(z.string(), z.string()).optional().describe('alarm id: the state it changes to (for alarm triggers)'),
});

const target = z.strictObject({ model: z.string(), name: z.string(), value: z.number() });

const expectSchema = z.union([
  z.strictObject({ at: durationSchema, rule: z.string().optional(), control: target }),
  z.strictObject({ at: durationSchema, rule: z.string().optional(), set: target }),
  z.strictObject({ at: durationSchema, rule: z.string().optional(), alarm: z.strictObject({ id: z.string(), clear: z.boolean().default(false) }) }),
  z.strictObject({
    at: durationSchema,
    rule: z.string().optional(),
    notify: z.strictObject({ message: z.string(), severity: z.enum(['info', ...SEVERITIES]).optional() }),
  }),
]);

export const ruleTestSchema = z.strictObject({
  name: z.string().min(1),
  rules: z.array(z.string()).min(1).optional().describe('the rules under test (default: all)'),
  start: z.iso.datetime({ offset: true }).default('2026-01-05T00:00:00Z').describe('the simulated clock at the start (cron triggers read it)'),
  given: z.array(givenSchema).min(1),
  expect: z.array(expectSchema).default([]).describe('every action taken, at its time (none other may be taken)'),
  until: durationSchema.optional().describe('how long the case runs (default: 1 minute past the last given or expected time)'),
});

export type RuleTestConfig = z.output<typeof ruleTestSchema>;
