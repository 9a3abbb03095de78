/** The cloud section: defaults, and every mistake at its file:line:column. */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../runtime/config/load.js';
import { configIssues } from '../helpers/configIssues.js';
import { writeSite } from '../helpers/servers.js';
import type { ConfigIssue } from '../../runtime/errors.js';

/** The messages of the issues on one line of cloud.yaml, joined. */
const messagesAt = (issues: readonly ConfigIssue[], line: number) =>
  issues
    .filter((i) => i.file === 'cloud.yaml' && i.line === line)
    .map((i) => i.message)
    .join(' | ');

const MODELS = `models:
  - id: pv1
    measurements: { P: {} }
`;
/** MODELS and a channel c1 with one point, m:1. */
const SITE_C1 = `${MODELS}channels:\n  - { id: c1, protocol: virtual, points: [{ type: m, id: 1, sim: { kind: constant, value: 1 } }] }\n`;

describe('cloud.links', () => {
  it('fills the defaults: prefix, data topic, QoS 1, no downlink commands', () => {
    const site = loadConfig(writeSite({ 'site.yaml': MODELS, 'cloud.yaml': 'cloud:\n  links:\n    - { id: main, url: "mqtt://127.0.0.1:1883" }\n' }));
    expect(site.cloud?.links[0]).toMatchObject({
      id: 'main',
      type: 'mqtt',
      prefix: 'voltage/{site}',
      dataTopic: '{prefix}/data/{model}',
      qos: 1,
      protocolVersion: 4,
      include: { quality: true, timestamps: true },
      downlink: { commands: false },
      inflight: 1000,
      batchEntries: 1000,
    });
  });

  it('reports each mistake with its position: a password instead of an env name, a bad URL, an unknown placeholder, an unknown model, a duplicate id', () => {
    const issues = configIssues({
      'site.yaml': MODELS,
      'cloud.yaml': [
        'cloud:',
        '  links:',
        '    - id: a',
        '      url: "http://x"',
        '      passwordEnv: "hunter 2"',
        '      dataTopic: "{prefix}/{point}"',
        '    - { id: b, url: "mqtt://h", models: [pv2] }',
        '    - { id: b, url: "mqtt://h", protocolVersion: 3 }',
        '',
      ].join('\n'),
    });
    const at = (line: number) => messagesAt(issues, line);
    expect(at(4)).toContain('must be an mqtt://');
    expect(at(5)).toContain('NAME of an environment variable');
    expect(at(6)).toContain('unknown placeholder {point}');
    expect(issues.every((i) => i.column > 0)).toBe(true);
    expect(issues.some((i) => i.file === 'cloud.yaml' && i.line === 8)).toBe(true);
  });

  it('checks model references and duplicate ids once the schema passes', () => {
    const issues = configIssues({
      'site.yaml': MODELS,
      'cloud.yaml': 'cloud:\n  links:\n    - { id: b, url: "mqtt://h", models: [pv2] }\n    - { id: b, url: "mqtt://h" }\n',
    });
    expect(issues.map((i) => `${i.line}: ${i.message}`)).toEqual([
      "3: cloud link 'b' uplinks model 'pv2', which does not exist; did you mean 'pv1'?",
      "4: cloud link 'b' is defined twice",
    ]);
  });

  it('an HTTP link: POST by default, drop-oldest, headers as written and from the environment; a secret written in headersEnv is refused', () => {
    const site = loadConfig(
      writeSite({
        'site.yaml': MODELS,
        'cloud.yaml': 'cloud:\n  links:\n    - { id: web, type: http, url: "https://c.example/ingest", headersEnv: { Authorization: CLOUD_TOKEN } }\n',
      }),
    );
    expect(site.cloud?.links[0]).toMatchObject({
      type: 'http',
      method: 'POST',
      overflow: 'drop-oldest',
      alarms: true,
      headersEnv: { Authorization: 'CLOUD_TOKEN' },
      // One request body: the smaller default (an MQTT link reads 1,000 at once).
      batchEntries: 200,
    });
    const issues = configIssues({
      'site.yaml': MODELS,
      'cloud.yaml': 'cloud:\n  links:\n    - { id: web, type: http, url: "ftp://x", headersEnv: { Authorization: "Bearer abc" }, overflow: keep }\n',
    });
    const text = issues.map((i) => i.message).join(' | ');
    expect(text).toContain('must be an http:// or https:// URL');
    expect(text).toContain('NAME of an environment variable');
    expect(issues.length).toBeGreaterThanOrEqual(3);
  });

  it('what to publish: channels, channelTopic, on-change with a deadband (a number or per point), interval with intervalMs', () => {
    const site = loadConfig(
      writeSite({
        'site.yaml': SITE_C1,
        'cloud.yaml': [
          'cloud:',
          '  links:',
          '    - { id: a, url: "mqtt://h", channels: [c1], deadband: 0.5 }',
          '    - { id: b, url: "mqtt://h", channels: [c1], deadband: { default: 1, models: { pv1: { P: 2 } }, channels: { c1: { "m:1": 0 } } } }',
          '    - { id: c, url: "mqtt://h", publish: interval, intervalMs: 5000, include: { quality: false } }',
          '',
        ].join('\n'),
      }),
    );
    const [a, b, c] = site.cloud!.links;
    expect(a).toMatchObject({
      publish: 'on-change',
      channels: ['c1'],
      channelTopic: '{prefix}/channel/{channel}',
      deadband: { default: 0.5, models: {}, channels: {} },
    });
    expect(b?.deadband).toEqual({ default: 1, models: { pv1: { P: 2 } }, channels: { c1: { 'm:1': 0 } } });
    expect(c).toMatchObject({ publish: 'interval', intervalMs: 5000, include: { quality: false, timestamps: true } });
  });

  it('reports each mistake in what to publish at its file:line:column', () => {
    const lines = [
      'cloud:',
      '  links:',
      '    - id: a', // 3
      '      url: "mqtt://h"',
      '      channels: [c9]', // 5
      '      channelTopic: "{prefix}/{model}"', // 6
      '      deadband:',
      '        default: -1', // 8
      '    - id: b', // 9
      '      url: "mqtt://h"',
      '      publish: interval', // 11
      '    - id: c',
      '      url: "mqtt://h"',
      '      intervalMs: 1000', // 14
      '    - id: d',
      '      url: "mqtt://h"',
      '      publish: interval',
      '      intervalMs: 1000',
      '      deadband: 1', // 19
      '    - id: e',
      '      url: "mqtt://h"',
      '      publish: sometimes', // 22
      '',
    ];
    const issues = configIssues({
      'site.yaml': SITE_C1,
      'cloud.yaml': lines.join('\n'),
    });
    const at = (line: number) => messagesAt(issues, line);
    expect(at(6)).toContain('unknown placeholder {model}');
    expect(at(8)).toMatch(/>=0|greater than or equal|too small/i);
    expect(at(11)).toContain('publish: interval needs intervalMs');
    expect(at(14)).toContain('intervalMs is for publish: interval');
    expect(at(19)).toContain('a deadband is for publish: on-change');
    expect(at(22)).toMatch(/on-change|interval/);
    expect(issues.every((i) => i.column > 0)).toBe(true);
  });

  it('checks the channels and the deadband points a link names, at their positions', () => {
    const issues = configIssues({
      'site.yaml': SITE_C1,
      'cloud.yaml': [
        'cloud:',
        '  links:',
        '    - id: a',
        '      url: "mqtt://h"',
        '      channels: [c1, c2]', // 5
        '      deadband:',
        '        models:',
        '          pv2: { P: 1 }', // 8
        '          pv1:',
        '            Q: 1', // 10
        '        channels:',
        '          c1: { "m:2": 1 }', // 12
        '',
      ].join('\n'),
    });
    expect(issues.map((i) => `${i.line}:${i.column}: ${i.message}`)).toEqual([
      "5:22: cloud link 'a' uplinks channel 'c2', which does not exist; did you mean 'c1'?",
      "8:11: deadband of model 'pv2', which does not exist; did you mean 'pv1'?",
      "10:13: model 'pv1' has no value 'Q'; did you mean 'P'?",
      "12:17: channel 'c1' has no point 'm:2' (points are named type:id, e.g. m:1); did you mean 'm:1'?",
    ]);
  });
});
