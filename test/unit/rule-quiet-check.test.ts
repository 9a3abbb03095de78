/**
 * The rule actor's quiet check (conditionOf): on every change of a rule's
 * inputs it asks for the condition without building the evaluation, and falls
 * back to the full evaluation when it cannot tell (an input not good, a
 * condition not a number). Law: when it tells, its CONDITION is the event of the
 * full evaluation, and it tells whenever that event is a CONDITION; for every
 * rule of the demo site and any values and qualities of their inputs, missing
 * ones and windows included.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../runtime/config/load.js';
import { conditionOf, evaluateRule, eventOf, RuleInputs, type InputValue } from '../../runtime/domain/ruleEvaluation.js';
import type { Quality } from '../../runtime/domain/telemetry.js';

const site = loadConfig('config');

const input = fc.option(
  fc.record({
    value: fc.option(fc.oneof(fc.double({ min: -1e4, max: 1e4, noNaN: true }), fc.constantFrom(0, -2, 2, 50, 80, 1e9)), { nil: null }),
    quality: fc.constantFrom<Quality | null>(null, 'good', 'good', 'good', 'stale', 'bad', 'comm-failure'),
  }),
  { nil: undefined, freq: 8 },
);

describe('the quiet check of a rule', () => {
  it('gives the event of the full evaluation, for every demo rule and any inputs (windows fed over time)', () => {
    expect(site.rules.length).toBeGreaterThan(2);
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: site.rules.length - 1 }),
        fc.array(fc.array(input, { minLength: 8, maxLength: 8 }), { minLength: 1, maxLength: 6 }),
        (k, rounds) => {
          const def = site.rules[k]!;
          const inputs = new RuleInputs(def);
          let now = 1_700_000_000_000;
          for (const values of rounds) {
            now += 1_000;
            def.inputs.forEach((ref, i) => {
              const v: InputValue | undefined = values[i % values.length];
              if (v) inputs.set(ref, v, now);
            });
            const windows = inputs.windowScope(now);
            const full = eventOf(evaluateRule(def, inputs.read, windows), now);
            const c = conditionOf(def, inputs.read, inputs.value, windows);
            expect(c === undefined, JSON.stringify(full)).toBe(full.type !== 'CONDITION');
            if (c !== undefined) expect({ type: 'CONDITION', value: c, now }).toEqual(full);
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});
