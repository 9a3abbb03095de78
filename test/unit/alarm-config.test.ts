/**
 * The `alarms` config section and a template's `alarms` block: what is
 * accepted, what each mistake is told, and what the condition evaluator gets.
 */
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { z } from 'zod';
import { alarmPolicySchema, alarmsSchema, conditionSpec, instantiateTemplateAlarms, templateAlarmsSchema, whenSchema } from '../../runtime/config/alarms.js';

/** Each problem as `path: message`. */
function problems(schema: z.ZodType, value: unknown): string[] {
  const r = schema.safeParse(value);
  return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
}

describe('alarms config', () => {
  it('accepts the sketch of the issue, with defaults filled in', () => {
    const raw = parse(`
alarms:
  - id: bess1.overtemp
    model: bess1
    when: { point: temp, above: 45, deadband: 2, onDelayMs: 5000, offDelayMs: 10000 }
    severity: major
    message: "Battery 1 at {value} °C (limit {limit})"
    latch: false
    suppressWhen: "bess1.P == 0 && bess1.soc < 1"
  - id: grid.freq_low
    model: grid
    when: { point: f, below: 49.8, deadband: 0.05 }
  - id: sensor.comm
    model: 1004
    when: { point: T, quality: comm-failure }
    severity: warning
`) as { alarms: unknown };
    const alarms = alarmsSchema.parse(raw.alarms);
    expect(alarms[0]).toMatchObject({
      id: 'bess1.overtemp',
      model: 'bess1',
      severity: 'major',
      latch: false,
      enabled: true,
      when: { onDelayMs: 5000, offDelayMs: 10000 },
    });
    expect(alarms[1]).toMatchObject({ severity: 'minor', when: { onDelayMs: 0, offDelayMs: 0 } });
    expect(alarms[2]!.model).toBe('1004');
    expect(alarms.map((a) => conditionSpec(a.when))).toEqual([
      { kind: 'above', limit: 45, deadband: 2 },
      { kind: 'below', limit: 49.8, deadband: 0.05 },
      { kind: 'quality', qualities: ['comm-failure'] },
    ]);
  });

  it('every kind of condition: equals on a signal, expr, a list of qualities, staleness', () => {
    expect(conditionSpec(whenSchema.parse({ point: 'breaker', equals: true }))).toEqual({ kind: 'equals', value: 1 });
    expect(conditionSpec(whenSchema.parse({ expr: 'grid.P > 100 && site.load < 5' }))).toEqual({ kind: 'expr', expr: 'grid.P > 100 && site.load < 5' });
    expect(conditionSpec(whenSchema.parse({ point: 'T', quality: ['bad', 'comm-failure'] }))).toEqual({ kind: 'quality', qualities: ['bad', 'comm-failure'] });
    expect(conditionSpec(whenSchema.parse({ point: 'T', staleMs: 30_000 }))).toEqual({ kind: 'stale', staleMs: 30_000 });
  });

  it('a condition with no test or two tests says which tests there are', () => {
    expect(problems(whenSchema, { point: 'T' })).toEqual([
      ': a condition needs one test: above, below, equals, expr, quality, staleMs (high and low limits on one point are separate alarms)',
    ]);
    expect(problems(whenSchema, { point: 'T', above: 5, below: 1 })).toEqual([
      ': a condition has exactly one test, found above and below (high and low limits on one point are separate alarms)',
    ]);
  });

  it('point: required by a point test, refused beside expr; deadband only on thresholds', () => {
    expect(problems(whenSchema, { above: 5 })).toEqual(['point: a condition with above needs the point it reads']);
    expect(problems(whenSchema, { point: 'T', expr: 'x > 1' })).toEqual(['point: an expr condition names its points inside the expression; remove point']);
    expect(problems(whenSchema, { point: 'T', equals: 1, deadband: 1 })).toEqual(['deadband: deadband applies to above and below only, not to equals']);
  });

  it('wrong values are named at their key', () => {
    const base = { id: 'a.b', model: 'm', when: { point: 'T', above: 1 } };
    expect(problems(alarmsSchema, [{ ...base, severity: 'urgent' }])[0]).toMatch(/^0\.severity: /);
    expect(problems(alarmsSchema, [{ ...base, id: 'a..b' }])).toEqual(['0.id: must be words of letters, digits, _ and - joined by dots, e.g. bess1.overtemp']);
    expect(problems(alarmsSchema, [{ ...base, when: { point: 'T', above: 1, onDelayMs: -5 } }])[0]).toMatch(/^0\.when\.onDelayMs: /);
    expect(problems(alarmsSchema, [{ ...base, when: { point: 'T', above: 1, onDelay: 5 } }])[0]).toMatch(/^0\.when: .*onDelay/);
    expect(problems(alarmsSchema, [{ ...base, escalateAfterMs: 0 }])[0]).toMatch(/^0\.escalateAfterMs: /);
    expect(problems(alarmsSchema, [{ id: 'a', when: { point: 'T', above: 1 } }])[0]).toMatch(/^0\.model: /);
  });

  it('a template block: local ids, no model; each instance gets them under its own id', () => {
    const tpl = templateAlarmsSchema.parse([{ id: 'overtemp', when: { point: 'temp', above: 45 }, severity: 'major', latch: true }]);
    expect(instantiateTemplateAlarms('bess2', tpl)).toEqual([
      expect.objectContaining({ id: 'bess2.overtemp', model: 'bess2', latch: true, severity: 'major' }),
    ]);
    expect(problems(templateAlarmsSchema, [{ id: 'x', model: 'm', when: { point: 'T', above: 1 } }])[0]).toMatch(/^0: .*model/);
    expect(problems(templateAlarmsSchema, [{ id: 'a.b', when: { point: 'T', above: 1 } }])[0]).toMatch(/^0\.id: .*\{model\}\.\{id\}/);
  });

  it("the policy defaults to ISA-18.2's usual figures: chattering 3 in 60 s, flood more than 10 in 10 min", () => {
    expect(alarmPolicySchema.parse({})).toEqual({ chattering: { count: 3, windowMs: 60_000 }, flood: { count: 10, windowMs: 600_000 }, groupWindowMs: 10_000 });
  });

  it('emits JSON Schema for editors', () => {
    const js = z.toJSONSchema(alarmsSchema, { io: 'input', unrepresentable: 'any' }) as { items?: { properties?: Record<string, unknown> } };
    expect(Object.keys(js.items?.properties ?? {})).toEqual(expect.arrayContaining(['id', 'model', 'when', 'severity', 'latch', 'suppressWhen']));
  });
});
