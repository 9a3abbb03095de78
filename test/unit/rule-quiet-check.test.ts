/**
 * The rule actor's quiet check (conditionEvent): on every change of a rule's
 * inputs it asks for the event an evaluation would give without building the
 * evaluation. Law: it is the event of the full evaluation, for every rule of
 * the demo site and any values and qualities of their inputs, missing ones
 * and windows included.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../runtime/config/load.js';
import { conditionEvent, evaluateRule, eventOf, RuleInputs, type InputValue } from '../../runtime/domain/ruleEvaluation.js';
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
            const latest = (ref: string) => inputs.get(ref);
            const windows = inputs.windowScope(now);
            expect(conditionEvent(def, latest, windows, now)).toEqual(eventOf(evaluateRule(def, latest, windows), now));
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});
