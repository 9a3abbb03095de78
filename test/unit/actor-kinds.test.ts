/**
 * The supervisor tree built from the kinds table (runtime/kinds.ts through
 * planTree): order, strategies and ids, for the registry and for the
 * supervisors alike; and a new kind is one table entry. Nothing is started.
 */
import { describe, expect, it } from 'vitest';
import { planTree, type ActorKind, type KindDeps } from '../../runtime/actorKind.js';
import { loadConfig } from '../../runtime/config/load.js';
import { KINDS } from '../../runtime/kinds.js';
import type { ChildSpec } from '../../runtime/supervisor.js';
import { quietLog, writeSite } from '../helpers/servers.js';

const SITE = `
runtime: { site: kinds }
gateway: { port: 0 }
channels:
  - { id: 7, protocol: virtual, points: [{ type: m, id: 1, name: P, sim: { kind: constant, value: 1 } }] }
  - { id: 8, protocol: virtual, enabled: false, points: [] }
  - { id: 9, protocol: virtual, points: [{ type: m, id: 1, name: P, sim: { kind: constant, value: 2 } }] }
models:
  - { id: pv, channel: 7, measurements: { P: {} } }
  - { id: grid, channel: 9, measurements: { P: {} } }
`;

/** Nothing in a plan touches these until a child starts, and no child starts here. */
const deps = { log: quietLog, redisUrl: 'redis://127.0.0.1:1', gatewayTokens: [], onListening: () => undefined } as unknown as KindDeps;

describe('the tree from the kinds table', () => {
  it('declares models, then channels, then the gateway under the root, each actor under its kind’s supervisor', () => {
    const plan = planTree(KINDS, loadConfig(writeSite({ 'site.yaml': SITE })), deps);
    expect(plan.nodes.map((n) => [n.id, n.kind, n.parent, n.order, n.strategy ?? ''])).toEqual([
      ['root', 'supervisor', '', 0, 'rest_for_one'],
      ['models', 'supervisor', 'root', 0, 'one_for_one'],
      ['model/pv', 'model', 'models', 0, ''],
      ['model/grid', 'model', 'models', 1, ''],
      ['channels', 'supervisor', 'root', 1, 'one_for_one'],
      ['channel/7', 'channel', 'channels', 0, ''],
      ['channel/9', 'channel', 'channels', 1, ''],
      ['gateway', 'gateway', 'root', 2, ''],
    ]);
  });

  it('builds the root supervisor with the same children in the same order', () => {
    const plan = planTree(KINDS, loadConfig(writeSite({ 'site.yaml': SITE })), deps);
    const root = plan.root(() => undefined);
    expect(root.info().map((c) => [c.id, c.type, c.status])).toEqual([
      ['models', 'supervisor', 'stopped'],
      ['channels', 'supervisor', 'stopped'],
      ['gateway', 'worker', 'stopped'],
    ]);
  });

  it('leaves out a kind without actors and without a supervisor (no gateway section: no gateway)', () => {
    const plan = planTree(KINDS, loadConfig(writeSite({ 'site.yaml': SITE.replace('gateway: { port: 0 }\n', '') })), deps);
    expect(plan.nodes.map((n) => n.id)).not.toContain('gateway');
    expect(
      plan
        .root(() => undefined)
        .info()
        .map((c) => c.id),
    ).toEqual(['models', 'channels']);
  });

  it('takes a new kind from one table entry, at its place in the start order, with its own policy', () => {
    const spec = (id: string): ChildSpec => ({
      id,
      restart: 'transient',
      shutdown: 1_000,
      type: 'worker',
      start: () => Promise.reject(new Error('not started here')),
    });
    const alarms: ActorKind = {
      kind: 'alarm',
      section: 'models',
      supervisor: { id: 'alarms', strategy: 'one_for_all', policy: (rt) => ({ ...rt.models, intensity: 9 }) },
      children: (site) => site.models.map((m) => spec(`alarm/${m.id}`)),
    };
    const kinds = [KINDS[0]!, alarms, ...KINDS.slice(1)];
    const plan = planTree(kinds, loadConfig(writeSite({ 'site.yaml': SITE })), deps);
    expect(plan.nodes.filter((n) => n.parent === 'root').map((n) => [n.id, n.order])).toEqual([
      ['models', 0],
      ['alarms', 1],
      ['channels', 2],
      ['gateway', 3],
    ]);
    expect(plan.nodes.filter((n) => n.parent === 'alarms').map((n) => n.id)).toEqual(['alarm/pv', 'alarm/grid']);
    expect(plan.nodes.find((n) => n.id === 'alarms')?.strategy).toBe('one_for_all');
  });
});
