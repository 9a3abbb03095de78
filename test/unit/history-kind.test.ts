/**
 * The history kind in the tree: its own supervisor after the channels, one
 * writer per backend, absent without a history section; and each writer's
 * options from the config (the token from the variable named, never the YAML).
 */
import { describe, expect, it } from 'vitest';
import { historyKind, writerOptions } from '../../actors/history/HistoryActor.js';
import { planTree, type KindDeps } from '../../runtime/actorKind.js';
import { loadConfig } from '../../runtime/config/load.js';
import { VoltageError } from '../../runtime/errors.js';
import { KINDS } from '../../runtime/kinds.js';
import { quietLog, writeSite } from '../helpers/servers.js';

const SITE = `
runtime: { site: h }
gateway: { port: 0 }
channels:
  - { id: 7, protocol: virtual, points: [{ type: m, id: 1, name: P, sim: { kind: constant, value: 1 } }] }
history:
  backends:
    - { id: vm, url: "http://127.0.0.1:8428" }
    - { id: influx, kind: influxdb, url: "http://127.0.0.1:8086", org: o, bucket: b, tokenEnv: VOLTAGE_TEST_INFLUX_TOKEN }
`;
const deps = { log: quietLog, redisUrl: 'redis://127.0.0.1:1', gatewayTokens: [], onListening: () => undefined } as unknown as KindDeps;

describe('the history kind', () => {
  it('runs one writer per backend under its own supervisor, after the channels and before the gateway', () => {
    const plan = planTree(KINDS, loadConfig(writeSite({ 'site.yaml': SITE })), deps);
    expect(plan.nodes.filter((n) => n.parent === 'root').map((n) => n.id)).toEqual(['models', 'channels', 'history', 'gateway']);
    expect(plan.nodes.filter((n) => n.parent === 'history').map((n) => [n.id, n.kind])).toEqual([
      ['history/vm', 'history'],
      ['history/influx', 'history'],
    ]);
    expect(
      plan
        .root(() => undefined)
        .info()
        .map((c) => c.id),
    ).toEqual(['models', 'channels', 'history', 'gateway']);
  });

  it('is not in the tree without a history section', () => {
    const plan = planTree(KINDS, loadConfig(writeSite({ 'site.yaml': SITE.slice(0, SITE.indexOf('history:')) })), deps);
    expect(plan.nodes.map((n) => n.id)).not.toContain('history');
  });

  it("takes the writer's options from the config and the token from the variable it names", () => {
    const h = loadConfig(writeSite({ 'site.yaml': SITE })).history!;
    expect(writerOptions(h, h.backends[1]!, { VOLTAGE_TEST_INFLUX_TOKEN: 't0k' })).toMatchObject({
      backend: 'influx',
      url: 'http://127.0.0.1:8086',
      org: 'o',
      bucket: 'b',
      token: 't0k',
      batchMaxEntries: 500,
      windowMs: 10_000,
      channels: true,
      models: true,
    });
    expect(writerOptions(h, h.backends[0]!, {}).token).toBeUndefined();
    expect(historyKind.supervisor?.strategy).toBe('one_for_one');
  });

  it('refuses a backend whose url nobody filled in (no embedded VictoriaMetrics started)', () => {
    const h = loadConfig(writeSite({ 'history.yaml': 'history: {}\n' })).history!;
    expect(() => writerOptions(h, h.backends[0]!)).toThrow(VoltageError);
    expect(() => writerOptions(h, h.backends[0]!)).toThrow(/no url, and no embedded VictoriaMetrics/);
  });
});
