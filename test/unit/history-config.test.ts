/**
 * The `history` section: defaults, and each mistake with its file, line and
 * column, in the style of config-validation.test.ts.
 */
import { configIssues } from '../helpers/configIssues.js';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../runtime/config/load.js';
import { queryBackend } from '../../runtime/config/history.js';
import { keepPolicies } from '../../actors/history/HistoryActor.js';
import { writeSite } from '../helpers/servers.js';

const INFLUX = `history:
  backends:
    - id: vm
    - id: influx
      kind: influxdb
      url: https://influx.example.com
      org: acme
      bucket: voltage
      tokenEnv: INFLUX_TOKEN
`;

describe('config: the history section', () => {
  it('absent: no history; empty: the embedded VictoriaMetrics with the defaults', () => {
    expect(loadConfig(writeSite({ 'site.yaml': 'runtime: { site: a }\n' })).history).toBeUndefined();
    const h = loadConfig(writeSite({ 'history.yaml': 'history: {}\n' })).history!;
    expect(h).toMatchObject({
      backends: [{ id: 'victoria', kind: 'victoria' }],
      batchMaxEntries: 500,
      batchMaxMs: 200,
      windowMs: 10_000,
      drainEntriesPerSecond: 5_000,
      prepareMaxMB: 128,
      channels: true,
      models: true,
      retention: '1y',
      maxPoints: 100_000,
    });
    expect(h.backends[0]!.url).toBeUndefined();
    expect(queryBackend(h)?.id).toBe('victoria');
  });

  it('an InfluxDB beside the embedded VictoriaMetrics; queries go to the VictoriaMetrics', () => {
    const h = loadConfig(writeSite({ 'history.yaml': INFLUX })).history!;
    expect(h.backends.map((b) => `${b.id}:${b.kind}`)).toEqual(['vm:victoria', 'influx:influxdb']);
    expect(h.backends[1]).toMatchObject({ org: 'acme', bucket: 'voltage', tokenEnv: 'INFLUX_TOKEN' });
    expect(queryBackend(h)?.id).toBe('vm');
  });

  it('an influxdb backend without url, org, bucket or tokenEnv: one error at its kind', () => {
    const [i, ...rest] = configIssues({ 'history.yaml': 'history:\n  backends:\n    - id: influx\n      kind: influxdb\n      url: http://h:8086\n' });
    expect(rest).toEqual([]);
    expect(i).toMatchObject({ file: 'history.yaml', line: 4, column: 13, code: 'INVALID_VALUE' });
    expect(i!.message).toContain('an influxdb backend needs org, bucket, tokenEnv');
  });

  it('a token written where the NAME of its variable belongs', () => {
    const [i] = configIssues({ 'history.yaml': INFLUX.replace('tokenEnv: INFLUX_TOKEN', 'tokenEnv: "s3cr3t-t0ken=="') });
    expect(i).toMatchObject({ line: 9, column: 17, code: 'INVALID_VALUE' });
    expect(i!.message).toContain('must be the NAME of an environment variable');
  });

  it('a bad retention, a window under 10 s, a wrong kind, an unknown key', () => {
    const issues = configIssues({
      'history.yaml': 'history:\n  retention: forever\n  windowMs: 5000\n  backends: [ { id: a, kind: prometheus } ]\n  batchSize: 3\n',
    });
    expect(issues.map((i) => [i.line, i.column, i.code])).toEqual([
      [2, 14, 'INVALID_VALUE'],
      [3, 13, 'OUT_OF_RANGE'],
      [4, 30, 'INVALID_VALUE'],
      [5, 3, 'UNKNOWN_KEY'],
    ]);
    expect(issues[0]!.message).toContain('-retentionPeriod');
    expect(issues[2]!.message).toContain('must be one of "victoria", "influxdb"');
    expect(issues[3]!.message).toContain("unknown key 'batchSize' in history; did you mean 'batchMaxMs'?");
  });

  it('two backends with one id, or two embedded ones', () => {
    const issues = configIssues({ 'history.yaml': 'history:\n  backends:\n    - id: a\n    - id: a\n      url: http://h:8428\n    - id: b\n' });
    expect(issues.map((i) => [i.line, i.column])).toEqual([
      [4, 11],
      [6, 11],
    ]);
    expect(issues[0]!.message).toContain("backend id 'a' is used twice");
    expect(issues[1]!.message).toContain('only one backend may be the embedded VictoriaMetrics');
  });

  it('the demo site keeps history in the embedded VictoriaMetrics', () => {
    const h = loadConfig('config').history;
    expect(h?.backends).toEqual([{ id: 'victoria', kind: 'victoria' }]);
  });
});

const KEEP_SITE = `channels:
  - id: "1001"
    protocol: virtual
    history: { mode: interval, intervalMs: 60000 }
    points:
      - { type: m, id: 1, sim: { kind: constant, value: 1 } }
      - { type: m, id: 2, sim: { kind: constant, value: 1 }, history: off }
      - { type: m, id: 3, sim: { kind: constant, value: 1 }, history: { maxGapMs: 300000 } }
  - id: "1002"
    protocol: virtual
    points:
      - { type: m, id: 1, sim: { kind: constant, value: 1 } }
      - { type: m, id: 2, sim: { kind: constant, value: 1 } }
      - { type: m, id: 3, sim: { kind: constant, value: 1 } }
      - { type: m, id: 4, sim: { kind: constant, value: 1 } }
templates:
  meter:
    history: { mode: interval, intervalMs: 900000, maxGapMs: 3600000 }
    measurements: { P: {}, E: { history: on-change } }
    calculations: { Pk: { expr: "P / 1000" } }
models:
  - { id: m1, template: meter, mapping: { P: "1002:m:1", E: "1002:m:2" } }
  - { id: m2, template: meter, history: off, mapping: { P: "1002:m:3", E: "1002:m:4" }, calculations: { Q: { expr: "P * 2", history: on-change } } }
`;

describe('config: what history keeps (history on a point, channel, model value, model or template)', () => {
  it('the nearest wins: point over channel; value over model over template; on-change by default', () => {
    const site = loadConfig(writeSite({ 'site.yaml': KEEP_SITE }));
    const points = site.channels[0]!.points.map((p) => p.history);
    expect(site.channels[0]!.history).toEqual({ mode: 'interval', intervalMs: 60_000 });
    expect(points).toEqual([undefined, { mode: 'off' }, { mode: 'on-change', maxGapMs: 300_000 }]);
    const keep = Object.fromEntries(site.models.map((m) => [m.id, Object.fromEntries(m.keep)]));
    expect(keep.m1).toEqual({
      P: { mode: 'interval', intervalMs: 900_000, maxGapMs: 3_600_000 },
      E: { mode: 'on-change' },
      Pk: { mode: 'interval', intervalMs: 900_000, maxGapMs: 3_600_000 },
    });
    expect(keep.m2).toEqual({ P: { mode: 'off' }, E: { mode: 'on-change' }, Pk: { mode: 'off' }, Q: { mode: 'on-change' } });
    // The writer's table holds the series that are not plain on-change, by series id.
    expect(Object.fromEntries(keepPolicies(site))).toEqual({
      'channel/1001/m/1': { mode: 'interval', intervalMs: 60_000 },
      'channel/1001/m/2': { mode: 'off' },
      'channel/1001/m/3': { mode: 'on-change', maxGapMs: 300_000 },
      'model/m1/P': keep.m1!.P,
      'model/m1/Pk': keep.m1!.Pk,
      'model/m2/P': { mode: 'off' },
      'model/m2/Pk': { mode: 'off' },
    });
  });

  it('each mistake at its file, line and column', () => {
    const bad = (history: string) => {
      const yaml = `channels:\n  - id: "1001"\n    protocol: virtual\n    points:\n      - { type: m, id: 1, sim: { kind: constant, value: 1 }, history: ${history} }\n`;
      return configIssues({ 'site.yaml': yaml });
    };
    const one = (history: string) => {
      const [i, ...rest] = bad(history);
      expect(rest).toEqual([]);
      return i!;
    };
    expect(one('sometimes')).toMatchObject({ file: 'site.yaml', line: 5, column: 71, code: 'INVALID_VALUE' });
    expect(one('sometimes').message).toContain("must be off, on-change or { mode: interval, intervalMs: … }, not 'sometimes'");
    expect(one('interval').message).toContain('interval needs intervalMs');
    expect(one('{ mode: interval }')).toMatchObject({ line: 5, column: 79 });
    expect(one('5')).toMatchObject({ code: 'WRONG_TYPE', message: expect.stringContaining('must be off, on-change or a mapping') });
    expect(one('{ mode: interval }').message).toContain('interval needs intervalMs');
    expect(one('{ mode: on-change, intervalMs: 1000 }').message).toContain('intervalMs applies to mode interval only');
    expect(one('{ mode: off, maxGapMs: 60000 }').message).toContain('maxGapMs (a heartbeat) means nothing when history is off');
    expect(one('{ mode: interval, intervalMs: 60000, maxGapMs: 30000 }').message).toContain('must be at least intervalMs');
    expect(one('{ mode: interval, intervalMs: 10 }')).toMatchObject({ code: 'OUT_OF_RANGE' });
    expect(one('{ mode: interval, intervalMs: 1000, every: 3 }')).toMatchObject({ code: 'UNKNOWN_KEY' });
    const [t] = configIssues({ 'site.yaml': 'templates:\n  meter:\n    history: { mode: sometimes }\n' });
    expect(t).toMatchObject({ line: 3, column: 22, code: 'INVALID_VALUE' });
    expect(t!.message).toContain("must be one of off, on-change, interval, not 'sometimes'");
  });
});
