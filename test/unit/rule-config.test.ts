/**
 * The `rules` config section: what a valid rule resolves to, and each mistake
 * reported at its file:line:column (unknown model or point in `when`, in a
 * trigger or in an action; an action on something that is not a control; an
 * expression that does not compile; a duration that is not one).
 */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../runtime/config/load.js';
import { configIssues } from '../helpers/configIssues.js';
import { writeSite } from '../helpers/servers.js';

const SITE = `
channels:
  - id: 1
    protocol: virtual
    points:
      - { type: m, id: 1, name: P, sim: { kind: constant, value: 0 } }
      - { type: a, id: 1, name: limit, min: 0, max: 80 }
models:
  - id: grid
    measurements: { P: {} }
    mapping: { P: "1:m:1" }
  - id: gw
    measurements: { mode: {} }
    controls: { export_limit: {} }
    mapping: { export_limit: "1:a:1" }
`;

/** A rules file whose first rule line is line 2 (the body's leading newline ends line 1, `rules:`). */
const rule = (body: string) => ({ 'site.yaml': SITE, 'rules.yaml': `rules:${body}` });

describe('rules config', () => {
  it('resolves a rule: durations, inputs, actions with their defaults', () => {
    const site = loadConfig(
      writeSite(
        rule(`
  - id: zero-export
    priority: 10
    trigger: { onChange: [grid.P], every: 5s }
    when: "grid.P < -2"
    for: 10s
    then:
      - control: { model: gw, name: export_limit, value: "max(0, 80 + grid.P)" }
      - set: { model: gw, name: mode, value: 1 }
    else:
      - control: { model: gw, name: export_limit, value: 80, minIntervalMs: 0 }
    cooldownMs: 30000
`),
      ),
    );
    expect(site.rules).toHaveLength(1);
    const r = site.rules[0]!;
    expect(r).toMatchObject({ id: 'zero-export', priority: 10, enabled: true, onChange: ['grid.P'], everyMs: 5_000, forMs: 10_000, cooldownMs: 30_000 });
    expect(r.inputs).toEqual(['grid.P']);
    expect(r.models).toEqual(['grid']);
    expect(r.then.map((a) => [a.kind, a.model, a.name, a.minIntervalMs])).toEqual([
      ['control', 'gw', 'export_limit', 1_000],
      ['set', 'gw', 'mode', 0],
    ]);
    expect(r.then[0]!.value.evaluate((ref) => (ref === 'grid.P' ? -5 : undefined))).toBe(75);
    expect(r.else[0]!.minIntervalMs).toBe(0);
  });

  it('an unknown model or point in `when` is reported at its line and column', () => {
    const issues = configIssues(
      rule(`
  - id: a
    trigger: { every: 1s }
    when: "grid.Q > 1 || meter.P > 0"
`),
    );
    expect(issues.map((i) => `${i.file}:${i.line}:${i.column} ${i.code}`)).toEqual(['rules.yaml:4:11 UNKNOWN_REF', 'rules.yaml:4:11 UNKNOWN_REF']);
    expect(issues[0]!.message).toContain("'grid.Q', which model 'grid' does not have; did you mean 'P'?");
    expect(issues[1]!.message).toContain("there is no model 'meter'");
  });

  it('an unknown trigger value, an action on a non-control, an unknown action model', () => {
    const issues = configIssues(
      rule(`
  - id: a
    trigger: { onChange: [grid.X] }
    when: "1"
    then:
      - control: { model: gw, name: mode, value: 1 }
      - control: { model: nope, name: x, value: 1 }
      - set: { model: grid, name: P, value: 1 }
`),
    );
    expect(issues.map((i) => `${i.line}:${i.column} ${i.code}`)).toEqual(['3:27 UNKNOWN_REF', '6:37 UNKNOWN_REF', '7:27 UNKNOWN_REF', '8:35 UNKNOWN_REF']);
    expect(issues[1]!.message).toContain("model 'gw' has no control 'mode'; did you mean 'export_limit'?");
    expect(issues[3]!.message).toContain('no channel point feeds');
  });

  it('an expression that does not compile (a type error, an unknown function) is reported with where in it', () => {
    const issues = configIssues(
      rule(`
  - id: a
    trigger: { every: 1s }
    when: "grid.P > 'x'"
    then:
      - control: { model: gw, name: export_limit, value: "avg(grid.P)" }
`),
    );
    expect(issues.map((i) => `${i.line}:${i.column} ${i.code}`)).toEqual(['4:11 EXPR_SYNTAX', '6:58 EXPR_SYNTAX']);
    expect(issues[0]!.message).toContain('only numbers are allowed');
    expect(issues[1]!.message).toContain("unknown function 'avg'");
  });

  it('a trigger without onChange or every, a bad duration, a duplicate id', () => {
    const issues = configIssues(
      rule(`
  - id: a
    trigger: {}
    when: "1"
    for: 10 seconds
  - id: a
    trigger: { every: 1s }
    when: "1"
`),
    );
    expect(issues.map((i) => `${i.line}:${i.column} ${i.code}`)).toEqual(['3:14 INVALID_VALUE', '5:10 INVALID_VALUE']);
    expect(issues[0]!.message).toContain('a trigger needs onChange or every');
    const dup = configIssues(
      rule(`
  - id: a
    trigger: { every: 1s }
    when: "1"
  - id: a
    trigger: { every: 1s }
    when: "1"
`),
    );
    expect(dup.map((i) => `${i.line}:${i.column} ${i.code}`)).toEqual(['5:9 DUPLICATE_ID']);
  });
});
