/**
 * The `history` section: defaults, and each mistake with its file, line and
 * column, in the style of config-validation.test.ts.
 */
import { configIssues } from '../helpers/configIssues.js';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../runtime/config/load.js';
import { queryBackend } from '../../runtime/config/history.js';
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
      windowMs: 15_000,
      drainEntriesPerSecond: 5_000,
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
