/**
 * `voltage validate`: one test per kind of mistake, each asserting the
 * message and the file:line:column it is reported at.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { stringify } from 'yaml';
import { loadConfig } from '../../runtime/config/load.js';
import { jsonSchema } from '../../runtime/config/schema.js';
import { heapGrowingPercent, type RuleDef } from '../../runtime/config/site.js';
import { ConfigError, type ConfigIssue } from '../../runtime/errors.js';
import { writeSite } from '../helpers/servers.js';

const CHANNEL = `channels:
  - id: 1001
    protocol: virtual
    pollMs: 1000
    points:
      - { type: m, id: 1, sim: { kind: sine, amplitude: 1, periodMs: 1000 } }
      - { type: m, id: 2, sim: { kind: constant, value: 3 } }
`;
const MODEL = `models:
  - id: pv1
    measurements: { P: {}, Q: {} }
    calculations:
      S: { expr: "sqrt(P^2 + Q^2)" }
    mapping: { P: "1001:m:1", Q: "1001:m:2" }
`;

function issuesOf(files: Record<string, string>): ConfigIssue[] {
  const dir = writeSite(files);
  try {
    loadConfig(dir);
  } catch (e) {
    if (e instanceof ConfigError) return e.issues.map((i) => ({ ...i, file: i.file.slice(i.file.lastIndexOf('/') + 1) }));
    throw e;
  }
  return [];
}

describe('config validation: every mistake with file, line and column', () => {
  it('accepts a correct site', () => {
    expect(issuesOf({ 'channels.yaml': CHANNEL, 'models.yaml': MODEL })).toEqual([]);
  });

  it('the example site in config/ is valid', () => {
    const site = loadConfig('config');
    expect(site.channels.length).toBeGreaterThan(0);
    expect(site.models.find((m) => m.id === 'site')?.dependsOn).toEqual(expect.arrayContaining(['grid', 'pv1', 'bess1']));
  });

  it('malformed YAML', () => {
    const issues = issuesOf({ 'channels.yaml': 'channels:\n  - id: 1001\n    points: [ {type: m\n' });
    expect(issues.map((i) => i.code)).toEqual(['YAML_SYNTAX', 'YAML_SYNTAX']);
    expect(issues[0]).toMatchObject({ file: 'channels.yaml', line: 4, column: 1 });
    expect(issues[0]!.message).toContain('must be sufficiently indented and end with a }');
  });

  it('YAML mistakes an integrator makes, each named in a sentence: a key given twice, a line indented off its siblings, a missing colon', () => {
    const [dup] = issuesOf({ 'channels.yaml': CHANNEL.replace('pollMs: 1000', 'pollMs: 1000\n    pollMs: 2000') });
    expect(dup).toMatchObject({ file: 'channels.yaml', line: 5, column: 5, code: 'YAML_SYNTAX' });
    expect(dup!.message).toBe("key 'pollMs' is given twice in this mapping (each key once)");
    const [indent] = issuesOf({ 'channels.yaml': 'channels:\n  - id: 1001\n   protocol: virtual\n' });
    expect(indent).toMatchObject({ line: 3, column: 1, code: 'YAML_SYNTAX' });
    expect(indent!.message).toContain('indented');
    const [colon] = issuesOf({ 'channels.yaml': 'channels:\n  - id: 1001\n    protocol virtual\n    pollMs: 1000\n' });
    expect(colon).toMatchObject({ line: 3, column: 5, code: 'YAML_SYNTAX' });
    expect(colon!.message).toContain("':'");
    // A quote never closed: where it opens, not the end of the file where yaml stopped looking.
    const [quote] = issuesOf({ 'channels.yaml': 'channels:\n  - id: "1001\n    protocol: virtual\n    pollMs: 1000\n' });
    expect(quote).toMatchObject({ line: 2, column: 9, code: 'YAML_SYNTAX' });
    expect(quote!.message).toContain('Missing closing "quote');
    const [single] = issuesOf({ 'channels.yaml': "channels:\n  - { id: '10''01, protocol: virtual }\n" });
    expect(single).toMatchObject({ line: 2, column: 11, code: 'YAML_SYNTAX' });
  });

  it('a folder outside the working directory: its files named by their absolute path, not ../../tmp/…', () => {
    const dir = writeSite({ 'channels.yaml': CHANNEL.replace('pollMs: 1000', 'polMs: 1000') });
    const issue = (() => {
      try {
        loadConfig(dir);
      } catch (e) {
        if (e instanceof ConfigError) return e.issues[0];
      }
    })();
    expect(issue?.file).toBe(join(dir, 'channels.yaml'));
  });

  it('unknown key, with the nearest valid one', () => {
    const [i] = issuesOf({ 'channels.yaml': CHANNEL.replace('pollMs: 1000', 'polMs: 1000') });
    expect(i).toMatchObject({ file: 'channels.yaml', line: 4, column: 5, code: 'UNKNOWN_KEY' });
    expect(i!.message).toContain("unknown key 'polMs' in channels[0]; did you mean 'pollMs'?");
  });

  it('wrong type', () => {
    const [i] = issuesOf({ 'channels.yaml': CHANNEL.replace('pollMs: 1000', 'pollMs: fast') });
    expect(i).toMatchObject({ line: 4, column: 13, code: 'WRONG_TYPE', message: 'channels[0].pollMs must be a number, not the text "fast"' });
  });

  it("runtime.heapGrowingPercent: 100 for a site with rules and V8's own otherwise by default, a whole percent up to 300", () => {
    const dir = writeSite({ 'channels.yaml': CHANNEL, 'models.yaml': MODEL });
    expect(loadConfig(dir).runtime.heapGrowingPercent).toBeUndefined();
    expect(heapGrowingPercent(loadConfig(dir))).toBe(0);
    expect(heapGrowingPercent({ ...loadConfig(dir), rules: [{} as RuleDef] })).toBe(100);
    expect(heapGrowingPercent({ runtime: { ...loadConfig(dir).runtime, heapGrowingPercent: 0 }, rules: [{} as RuleDef] })).toBe(0);
    const site = (v: string) => ({ 'runtime.yaml': `runtime:\n  heapGrowingPercent: ${v}\n`, 'channels.yaml': CHANNEL, 'models.yaml': MODEL });
    expect(loadConfig(writeSite(site('100'))).runtime.heapGrowingPercent).toBe(100);
    for (const bad of ['301', '-1', '1.5']) {
      const [i] = issuesOf(site(bad));
      expect(i, bad).toMatchObject({ file: 'runtime.yaml', line: 2 });
      expect(i!.message, bad).toContain('runtime.heapGrowingPercent');
    }
  });

  it('missing required key', () => {
    const [i] = issuesOf({ 'channels.yaml': CHANNEL.replace('    protocol: virtual\n', '') });
    expect(i).toMatchObject({ line: 2, code: 'MISSING_KEY' });
    expect(i!.message).toContain('channels[0].protocol is required');
  });

  it('a value outside its set (waveform kind)', () => {
    const [i] = issuesOf({ 'channels.yaml': CHANNEL.replace('kind: sine', 'kind: saw') });
    expect(i).toMatchObject({ line: 6, column: 40, code: 'INVALID_VALUE' });
    expect(i!.message).toContain('must be one of "sine", "square", "counter", "random_walk", "constant", not the text "saw"');
  });

  it('a mapping to a point that does not exist', () => {
    const [i] = issuesOf({ 'channels.yaml': CHANNEL, 'models.yaml': MODEL.replace('"1001:m:2"', '"1001:m:7"') });
    expect(i).toMatchObject({ file: 'models.yaml', line: 6, column: 34, code: 'UNKNOWN_REF' });
    expect(i!.message).toBe("model 'pv1' maps 'Q' to point m:7, which channel '1001' does not have");
  });

  it('a mapping to a channel that does not exist, with the nearest id', () => {
    const [i] = issuesOf({ 'channels.yaml': CHANNEL, 'models.yaml': MODEL.replace('"1001:m:2"', '"1010:m:2"') });
    expect(i!.message).toBe("model 'pv1' maps 'Q' to channel '1010', which does not exist; did you mean '1001'?");
  });

  it('a duplicate id', () => {
    const twice = `${CHANNEL}  - id: 1001\n    protocol: virtual\n`;
    const [i] = issuesOf({ 'channels.yaml': twice });
    expect(i).toMatchObject({ line: 8, column: 9, code: 'DUPLICATE_ID' });
    expect(i!.message).toContain("channel id '1001' is used twice (first at");
  });

  it('a calculation cycle', () => {
    const cyc = MODEL.replace('S: { expr: "sqrt(P^2 + Q^2)" }', 'S: { expr: "T + P" }\n      T: { expr: "S * 2" }');
    const [i] = issuesOf({ 'channels.yaml': CHANNEL, 'models.yaml': cyc });
    expect(i).toMatchObject({ file: 'models.yaml', line: 5, code: 'CALC_CYCLE', message: 'calculations form a cycle: pv1.S → pv1.T → pv1.S' });
  });

  it('a cycle across models', () => {
    const two = `${MODEL}  - id: site\n    calculations:\n      load: { expr: "pv1.S + 1" }\n`;
    const cyc = two.replace('"sqrt(P^2 + Q^2)"', '"site.load"');
    const issues = issuesOf({ 'channels.yaml': CHANNEL, 'models.yaml': cyc });
    expect(issues.map((i) => i.code)).toEqual(['CALC_CYCLE']);
    expect(issues[0]!.message).toContain('pv1.S → site.load → pv1.S');
  });

  it('an expression that does not parse, or calls an unknown function', () => {
    const bad = MODEL.replace('"sqrt(P^2 + Q^2)"', '"P +"');
    expect(issuesOf({ 'channels.yaml': CHANNEL, 'models.yaml': bad })[0]).toMatchObject({ line: 5, code: 'EXPR_SYNTAX' });
    const fn = MODEL.replace('"sqrt(P^2 + Q^2)"', '"system(P)"');
    expect(issuesOf({ 'channels.yaml': CHANNEL, 'models.yaml': fn })[0]!.message).toContain("unknown function 'system'");
  });

  it('an expression reading a value that does not exist', () => {
    const bad = MODEL.replace('"sqrt(P^2 + Q^2)"', '"P + Qq"');
    expect(issuesOf({ 'channels.yaml': CHANNEL, 'models.yaml': bad })[0]!.message).toContain("reads 'Qq', which model 'pv1' does not have; did you mean 'Q'?");
  });

  it('CSV point tables: a wrong cell is reported at its row and column', () => {
    const csv = 'type,id,sim.kind,sim.value\nm,1,constant,1\nm,2,constant,abc\n';
    const yaml = 'channels:\n  - id: 7\n    protocol: virtual\n    pointsFile: p.csv\n';
    const [i] = issuesOf({ 'channels.yaml': yaml, 'p.csv': csv });
    expect(i).toMatchObject({ file: 'p.csv', line: 3, column: 14, code: 'WRONG_TYPE' });
  });

  it('CSV point tables: a duplicate point, and a missing file', () => {
    const csv = 'type,id,sim.kind,sim.value\nm,1,constant,1\nm,1,constant,2\n';
    const yaml = 'channels:\n  - id: 7\n    protocol: virtual\n    pointsFile: p.csv\n';
    expect(issuesOf({ 'channels.yaml': yaml, 'p.csv': csv })[0]).toMatchObject({ file: 'p.csv', line: 3, column: 3, code: 'DUPLICATE_ID' });
    expect(issuesOf({ 'channels.yaml': yaml })[0]).toMatchObject({
      file: 'channels.yaml',
      line: 4,
      column: 17,
      code: 'CSV_MISSING',
      message: "there is no point table 'p.csv' (paths are relative to the config folder)",
    });
    const short = issuesOf({ 'channels.yaml': yaml, 'p.csv': 'type,id,sim.kind,sim.value\nm,1,constant,1\nm,2\n' })[0];
    expect(short).toMatchObject({ file: 'p.csv', line: 3, column: 1, code: 'CSV_SYNTAX', message: 'this row has 2 cells, the header 4' });
  });

  it('CSV point tables: a table named by two channels is read once, its problems told for each channel at the row', () => {
    const csv = 'type,id,sim.kind,sim.value\nm,1,constant,1\nm,2,constant,abc\n';
    const yaml = 'channels:\n  - id: 7\n    protocol: virtual\n    pointsFile: p.csv\n  - id: 8\n    protocol: virtual\n    pointsFile: p.csv\n';
    const issues = issuesOf({ 'channels.yaml': yaml, 'p.csv': csv });
    expect(issues.map((i) => [i.file, i.line, i.column, i.code])).toEqual([
      ['p.csv', 3, 14, 'WRONG_TYPE'],
      ['p.csv', 3, 14, 'WRONG_TYPE'],
    ]);
    // A broken table is one problem, however many channels name it.
    const broken = issuesOf({ 'channels.yaml': yaml, 'p.csv': 'type,id,sim.kind,sim.value\nm,1,constant,1\nm,2\n' });
    expect(broken.map((i) => [i.file, i.line, i.code])).toEqual([['p.csv', 3, 'CSV_SYNTAX']]);
    // Each channel gets points of its own values (shared when equal, after the checks).
    const ok = loadConfig(writeSite({ 'channels.yaml': yaml, 'p.csv': csv.replace('abc', '2') }));
    expect(ok.channels.map((c) => c.points.map((p) => [p.type, p.id]))).toEqual([
      [
        ['m', 1],
        ['m', 2],
      ],
      [
        ['m', 1],
        ['m', 2],
      ],
    ]);
  });

  it('a model takes its points from a channel by name', () => {
    const named = CHANNEL.replace('{ type: m, id: 1,', '{ type: m, id: 1, name: P,').replace('{ type: m, id: 2,', '{ type: m, id: 2, name: Q,');
    const dir = writeSite({ 'channels.yaml': named, 'models.yaml': 'models:\n  - id: pv1\n    measurements: { P: {}, Q: {} }\n    channel: 1001\n' });
    const site = loadConfig(dir);
    expect([...site.models[0]!.mapping]).toEqual([
      ['P', { channel: '1001', type: 'm', point: 1 }],
      ['Q', { channel: '1001', type: 'm', point: 2 }],
    ]);
    const [i] = issuesOf({ 'channels.yaml': named, 'models.yaml': 'models:\n  - id: pv1\n    measurements: { P: {}, R: {} }\n    channel: 1001\n' });
    expect(i).toMatchObject({
      file: 'models.yaml',
      line: 4,
      column: 14,
      code: 'UNKNOWN_REF',
      message: "model 'pv1': channel '1001' has no point named 'R' (give it in 'mapping' or name a point so)",
    });
  });

  describe('alarms', () => {
    const ALARMS = `alarms:
  - id: pv1.high
    model: pv1
    when: { point: P, above: 5, deadband: 1, onDelayMs: 1000 }
    severity: major
  - id: pv1.calc
    model: pv1
    when: { expr: "S > 3" }
    suppressWhen: "pv1.Q == 0"
`;
    it("resolves the alarms section and a template's alarms, once per instance", () => {
      const tpl = `templates:\n  inv:\n    measurements: { P: {}, Q: {} }\n    alarms:\n      - { id: low, when: { point: P, below: 1 }, severity: warning }\n`;
      const models = MODEL.replace('  - id: pv1\n', '  - id: pv1\n    template: inv\n').replace('    measurements: { P: {}, Q: {} }\n', '');
      const dir = writeSite({ 'channels.yaml': CHANNEL, 'models.yaml': `${tpl}${models}`, 'alarms.yaml': ALARMS });
      const site = loadConfig(dir);
      expect(site.alarms.map((a) => a.id)).toEqual(['pv1.high', 'pv1.calc', 'pv1.low']);
      expect(site.alarms[0]).toMatchObject({
        model: 'pv1',
        severity: 'major',
        onDelayMs: 1000,
        limit: 5,
        test: { kind: 'point', point: 'P', spec: { kind: 'above', limit: 5, deadband: 1 } },
      });
      expect(site.alarms[1]!.suppressWhen?.refs).toEqual(['pv1.Q']);
      expect(site.alarmPolicy).toEqual({ chattering: { count: 3, windowMs: 60_000 }, flood: { count: 10, windowMs: 600_000 }, groupWindowMs: 10_000 });
    });

    it('an alarm on an unknown model, with the nearest id', () => {
      const [i] = issuesOf({
        'channels.yaml': CHANNEL,
        'models.yaml': MODEL,
        'alarms.yaml': ALARMS.replace('model: pv1\n    when: { point: P', 'model: pv2\n    when: { point: P'),
      });
      expect(i).toMatchObject({ file: 'alarms.yaml', line: 3, column: 12, code: 'UNKNOWN_REF' });
      expect(i!.message).toBe("alarm 'pv1.high' is on model 'pv2', which does not exist; did you mean 'pv1'?");
    });

    it('an alarm on an unknown point, and an expression reading an unknown value', () => {
      const issues = issuesOf({
        'channels.yaml': CHANNEL,
        'models.yaml': MODEL,
        'alarms.yaml': ALARMS.replace('point: P,', 'point: Pp,').replace('"pv1.Q == 0"', '"pv1.Qx == 0"'),
      });
      expect(issues.map((i) => [i.line, i.column, i.code])).toEqual([
        [4, 20, 'UNKNOWN_REF'],
        [9, 19, 'UNKNOWN_REF'],
      ]);
      expect(issues[0]!.message).toBe("alarm 'pv1.high' reads 'Pp', which model 'pv1' does not have; did you mean 'P'?");
      expect(issues[1]!.message).toContain("suppressWhen reads 'pv1.Qx', which model 'pv1' does not have; did you mean 'Q'?");
    });

    it('a condition with two tests, a duplicate id, a wrong severity', () => {
      const two = issuesOf({ 'channels.yaml': CHANNEL, 'models.yaml': MODEL, 'alarms.yaml': ALARMS.replace('above: 5,', 'above: 5, below: 1,') });
      expect(two[0]).toMatchObject({ line: 4, code: 'INVALID_VALUE' });
      expect(two[0]!.message).toContain('a condition has exactly one test, found above and below');
      const dup = issuesOf({ 'channels.yaml': CHANNEL, 'models.yaml': MODEL, 'alarms.yaml': ALARMS.replace('id: pv1.calc', 'id: pv1.high') });
      expect(dup[0]).toMatchObject({ line: 6, column: 9, code: 'DUPLICATE_ID', message: "alarm id 'pv1.high' is used twice" });
      const sev = issuesOf({ 'channels.yaml': CHANNEL, 'models.yaml': MODEL, 'alarms.yaml': ALARMS.replace('severity: major', 'severity: huge') });
      expect(sev[0]).toMatchObject({ line: 5, column: 15, code: 'INVALID_VALUE' });
    });
  });

  it('reports every problem at once, in file order', () => {
    const issues = issuesOf({ 'a.yaml': CHANNEL.replace('pollMs: 1000', 'polMs: 1000'), 'b.yaml': 'runtime: { site: 1, log: { level: loud } }\n' });
    expect(issues.map((i) => `${i.file}:${i.code}`)).toEqual(['a.yaml:UNKNOWN_KEY', 'b.yaml:INVALID_VALUE']);
  });

  it('config/schema.json is the schema the loader uses (regenerate with `voltage schema`)', () => {
    expect(JSON.parse(readFileSync('config/schema.json', 'utf8'))).toEqual(jsonSchema());
  });

  it('property: generated sites load with their counts, and an unknown key anywhere is reported at its line', () => {
    const point = fc.record({ type: fc.constantFrom('m', 's'), value: fc.integer({ min: -1000, max: 1000 }) });
    const site = fc.array(fc.array(point, { minLength: 1, maxLength: 6 }), { minLength: 1, maxLength: 5 });
    fc.assert(
      fc.property(site, fc.nat(), fc.nat(), (channels, whichCh, whichPt) => {
        const doc = {
          channels: channels.map((pts, ci) => ({
            id: 100 + ci,
            protocol: 'virtual',
            pollMs: 100,
            points: pts.map((p, pi) => ({ type: p.type, id: pi, sim: { kind: 'constant', value: p.value } })),
          })),
        };
        const good = loadConfig(writeSite({ 'channels.yaml': stringify(doc) }));
        expect(good.channels.map((c) => c.points.length)).toEqual(channels.map((c) => c.length));
        const ci = whichCh % channels.length;
        const pi = whichPt % channels[ci]!.length;
        (doc.channels[ci]!.points[pi] as Record<string, unknown>).bogusKey = 1;
        const text = stringify(doc);
        const line = text.split('\n').findIndex((l) => l.includes('bogusKey')) + 1;
        const issues = issuesOf({ 'channels.yaml': text });
        expect(issues).toHaveLength(1);
        expect(issues[0]).toMatchObject({ code: 'UNKNOWN_KEY', line });
      }),
      { numRuns: 40 },
    );
  });
});
