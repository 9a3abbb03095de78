/** The cloud section: defaults, and every mistake at its file:line:column. */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../runtime/config/load.js';
import { configIssues } from '../helpers/configIssues.js';
import { writeSite } from '../helpers/servers.js';

const MODELS = `models:
  - id: pv1
    measurements: { P: {} }
`;

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
      inflight: 100,
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
    const at = (line: number) =>
      issues
        .filter((i) => i.file === 'cloud.yaml' && i.line === line)
        .map((i) => i.message)
        .join(' | ');
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
});
