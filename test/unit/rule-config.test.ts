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
    const targets = r.then.flatMap((a) => (a.kind === 'control' || a.kind === 'set' ? [a] : []));
    const elseTargets = r.else.flatMap((a) => (a.kind === 'control' || a.kind === 'set' ? [a] : []));
    expect(targets.map((a) => [a.kind, a.model, a.name, a.minIntervalMs])).toEqual([
      ['control', 'gw', 'export_limit', 1_000],
      ['set', 'gw', 'mode', 0],
    ]);
    expect(targets[0]!.value.evaluate((ref) => (ref === 'grid.P' ? -5 : undefined))).toBe(75);
    expect(elseTargets[0]!.minIntervalMs).toBe(0);
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
      - control: { model: gw, name: export_limit, value: "mean(grid.P)" }
`),
    );
    expect(issues.map((i) => `${i.line}:${i.column} ${i.code}`)).toEqual(['4:11 EXPR_SYNTAX', '6:58 EXPR_SYNTAX']);
    expect(issues[0]!.message).toContain('only numbers are allowed');
    expect(issues[1]!.message).toContain("unknown function 'mean'");
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
    expect(issues[0]!.message).toContain('a trigger needs onChange, every, cron, alarm or sequence');
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

  it('window functions, cron, alarm and sequence triggers, alarm and notify actions resolve', () => {
    const site = loadConfig(
      writeSite(
        rule(`
  - id: avg-export
    trigger: { onChange: [grid.P] }
    when: "avg(grid.P, 60s) < -2 && delta(grid.P, 5m) < 0"
    then:
      - alarm: { id: site.export_high, severity: major, message: "Export high" }
      - notify: { message: "export at {grid.P} kW" }
    else:
      - alarm: { id: site.export_high, clear: true }
  - id: morning
    trigger: { cron: "0 7 * * 1-5", timezone: UTC }
    then:
      - set: { model: gw, name: mode, value: 2 }
  - id: on-alarm
    trigger: { alarm: "site.*" }
    when: "grid.P < 0"
    then:
      - notify: { message: "an alarm of the site", severity: minor }
  - id: seq
    trigger: { sequence: ["grid.P < -1", "grid.P > 1"], within: 30s }
    then:
      - set: { model: gw, name: mode, value: 3 }
`),
      ),
    );
    const [w, cron, alarm, seq] = site.rules;
    expect(w!.windows).toEqual([
      { fn: 'avg', ref: 'grid.P', ms: 60_000 },
      { fn: 'delta', ref: 'grid.P', ms: 300_000 },
    ]);
    expect(w!.alarms).toEqual([{ id: 'site.export_high', rule: 'avg-export', severity: 'major', message: 'Export high' }]);
    expect(w!.then.map((a) => a.kind)).toEqual(['alarm', 'notify']);
    expect(w!.else[0]).toEqual({ kind: 'alarm', alarm: 'site.export_high', raise: false });
    expect(cron!.event).toEqual({ kind: 'cron', cron: '0 7 * * 1-5', timezone: 'UTC' });
    expect(cron!.when.source).toBe('1');
    expect(alarm!.event).toEqual({ kind: 'alarm', glob: 'site.*' });
    expect(seq!.event?.kind).toBe('sequence');
    expect(seq!.inputs).toEqual(['grid.P']);
  });

  it('a bad window, a bad cron, an event rule with for or else, a rule alarm given two severities: each at its line', () => {
    const issues = configIssues(
      rule(`
  - id: a
    trigger: { onChange: [grid.P] }
    when: "avg(grid.P, 0s) < -2"
  - id: b
    trigger: { cron: "61 * * * *" }
    then: []
  - id: c
    trigger: { cron: "0 7 * * *" }
    for: 5s
    else:
      - set: { model: gw, name: mode, value: 1 }
  - id: e
    trigger: { onChange: [grid.P] }
    when: "grid.P > 1"
    then:
      - alarm: { id: x.y, severity: major }
    else:
      - alarm: { id: x.y, clear: true, severity: minor }
`),
    );
    const got = issues.map((i) => `${i.line}:${i.column} ${i.code}`);
    expect(got).toContain('4:11 EXPR_SYNTAX');
    expect(issues.find((i) => i.line === 4)!.message).toContain('window must be longer than 0');
    expect(got).toContain('6:22 BAD_CRON');
    expect(got).toContain('10:10 EVENT_FOR');
    expect(got).toContain('12:7 EVENT_ELSE');
    expect(got).toContain('19:50 ALARM_CONFLICT');
    expect(got).toHaveLength(5);
  });

  it('a sequence without within, a trigger both on values and on an event', () => {
    const issues = configIssues(
      rule(`
  - id: d
    trigger: { sequence: ["grid.P > 1", "grid.P < 1"] }
  - id: f
    trigger: { onChange: [grid.P], alarm: "x.*" }
    when: "grid.P > 1"
`),
    );
    expect(issues.some((i) => i.line === 3 && i.message.includes('a sequence needs within'))).toBe(true);
    expect(issues.some((i) => i.line === 5 && i.message.includes('either on values'))).toBe(true);
  });

  it("a cycle of rules that set each other's inputs is reported once, at a set action", () => {
    const issues = configIssues({
      'site.yaml': SITE.replace('measurements: { mode: {} }', 'measurements: { mode: {}, stage: {}, solo: {} }'),
      'rules.yaml': `rules:
  - id: a
    trigger: { onChange: [gw.mode] }
    when: "gw.mode > 0"
    then:
      - set: { model: gw, name: stage, value: 1 }
  - id: b
    trigger: { onChange: [gw.stage] }
    when: "gw.stage > 0"
    then:
      - set: { model: gw, name: mode, value: 0 }
  - id: self
    trigger: { onChange: [gw.solo] }
    when: "gw.solo > 5"
    then:
      - set: { model: gw, name: solo, value: 5 }
`,
    });
    expect(issues.map((i) => `${i.line}:${i.column} ${i.code}`)).toEqual(['6:14 RULE_CYCLE']);
    expect(issues[0]!.message).toContain("rules 'a' → 'b' → 'a' set each other's inputs");
  });
});
