/**
 * Rules end to end against a private redis-server and the real runtime: the
 * zero-export rule commands a virtual device's export limit and the command is
 * confirmed; on a simulated Modbus device over real TCP, a grid power read from
 * a register drives it and the limit lands in the device's holding register
 * (a `for` across a restart or a kill -9 of the runtime is in
 * test/faults/); a bad-quality input blocks the rule; of two rules on
 * one control the higher priority wins and the other is journaled overridden;
 * a deferred command the stopping runtime will not send is journaled dropped;
 * rule_commit refuses a stale version and writes nothing (a sequence's progress
 * included); the routes, their errors, and a dry run that writes nothing (keys
 * compared before and after).
 */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../runtime/config/load.js';
import { sha256 } from '../../runtime/gateway/http.js';
import type { Quality } from '../../runtime/domain/telemetry.js';
import { RuleConflictError } from '../../runtime/redis/rules.js';
import { startRuntime } from '../../runtime/runtime.js';
import { startSim, setPointValue } from '../../runtime/sim.js';
import { freePort } from '../../runtime/redisServer.js';
import { initialRule } from '../../machines/ruleMachine.js';
import { modbusCommandChannel } from '../helpers/modbusSite.js';
import { eventually, quietLog, sleep, writeSite } from '../helpers/servers.js';
import { ruleSite, ZERO_EXPORT } from '../helpers/ruleSite.js';
import { commandResult, privateRedisSuite } from '../helpers/suite.js';

const t = privateRedisSuite();

const SITE = ruleSite(['P']);

const GATEWAY = `gateway:
  port: 0
  tokens:
    - { name: vera, role: viewer, sha256: ${sha256('v-token')} }
    - { name: otto, role: operator, sha256: ${sha256('o-token')} }
`;

async function start(rules: string, gateway = ''): Promise<void> {
  t.running = await startRuntime(loadConfig(writeSite({ 'site.yaml': SITE + gateway, 'rules.yaml': rules })), { redisUrl: t.server.url, log: quietLog });
}

/** grid.P as a device would report it (a model value with its quality, published like any other). */
async function gridP(value: number, quality: Quality = 'good'): Promise<void> {
  await t.bus.telemetry.modelSet('grid', Date.now(), [{ name: 'P', value, quality }]);
}

const ruleState = async (id: string) => (await t.bus.rules.read(id))?.state;

describe('rules on a running site', () => {
  it('zero export: the rule writes the export limit to the device and the command is confirmed, journaled with the execution', async () => {
    await start(ZERO_EXPORT.replace('FOR', '200ms'));
    await eventually(async () => (await ruleState('zero-export')) === 'idle');
    await gridP(-5);
    await eventually(async () => (await ruleState('zero-export')) === 'active', 5_000);
    await eventually(async () => (await t.raw.hget('comsrv:v1:a', '1')) === '45.000000', 5_000);
    const results = await eventually(async () => {
      const j = await t.bus.rules.journal('zero-export');
      return j.find((e) => e.kind === 'result');
    }, 5_000);
    const actions = (results.data as { actions: Array<{ outcome: string; status: string; commandId: string; value: number }> }).actions;
    expect(actions).toEqual([expect.objectContaining({ outcome: 'sent', status: 'confirmed', value: 45 })]);
    expect((await t.bus.commands.command(actions[0]!.commandId))?.source).toBe('rule:zero-export');
    // The registry's report of the step (for `voltage status` and the visualizer) went with the commit.
    expect(await t.raw.hget('actor:rule/zero-export', 'state')).toBe('"active"');
    expect((await t.bus.actors.transitions('rule/zero-export')).map((e) => e.to)).toContain('"active"');
    const execution = (await t.bus.rules.journal('zero-export')).find((e) => e.kind === 'execution')!;
    expect(execution.data).toMatchObject({
      trigger: expect.any(String),
      condition: true,
      branch: 'then',
      inputs: { 'grid.P': { value: -5, quality: 'good' } },
    });
    // The condition stops holding: the else action runs.
    await gridP(1);
    await eventually(async () => (await t.raw.hget('comsrv:v1:a', '1')) === '80.000000', 5_000);
    // No cooldown configured: the rule is back to idle at once.
    expect(await ruleState('zero-export')).toBe('idle');
    expect((await t.bus.rules.read('zero-export'))!.stats).toMatchObject({ fires: 1, releases: 1, executions: 2 });
  });

  it('zero export on a simulated Modbus device: grid.P read from a register fires the rule, the limit is written to the holding register and confirmed', async () => {
    const port = await freePort();
    // grid.P is m:2 (holding 2, int16, scale 0.1, no waveform: the test sets the register); export_limit is a:1 (holding 10).
    const site = loadConfig(
      writeSite({
        'site.yaml': `${modbusCommandChannel(port, ['- { type: m, id: 2, scale: 0.1, modbus: { unit: 1, fn: 3, address: 2, dataType: int16 } }'])}models:
  - id: grid
    measurements: { P: {} }
    mapping: { P: "mb:m:2" }
  - id: gw
    measurements: { U: {} }
    controls: { export_limit: {} }
    mapping: { U: "mb:m:1", export_limit: "mb:a:1" }
`,
        'rules.yaml': ZERO_EXPORT.replace('FOR', '200ms'),
      }),
    );
    t.sim = await startSim(site);
    const sim = t.sim.channels[0]!;
    const dev = sim.devices.get(1)!;
    const gridRegister = sim.channel.points.find((p) => p.type === 'm' && p.id === 2)!;
    t.running = await startRuntime(site, { redisUrl: t.server.url, log: quietLog });
    await eventually(async () => (await t.raw.hget('modsrv:grid:measurement', 'P')) !== null && (await ruleState('zero-export')) === 'idle');
    // Exporting 5 kW, as the meter's register says: the limit becomes max(0, 50 + grid.P) = 45, raw 450.
    setPointValue(dev, gridRegister, -5);
    await eventually(() => dev.holding[10] === 450, 5_000);
    const result = async (value: number) => {
      const r = await eventually(async () => {
        const entries = await t.bus.rules.journal('zero-export');
        return entries.find((e) => e.kind === 'result' && (e.data as { actions: Array<{ value: number }> }).actions[0]?.value === value);
      }, 5_000);
      return (r.data as { actions: Array<{ outcome: string; status: string; commandId: string; value: number }> }).actions;
    };
    const fired = await result(45);
    expect(fired).toEqual([expect.objectContaining({ outcome: 'sent', status: 'confirmed', value: 45 })]);
    expect(await commandResult(t.bus, fired[0]!.commandId)).toMatchObject({ source: 'rule:zero-export', channel: 'mb', status: 'confirmed', readback: 45 });
    const execution = (await t.bus.rules.journal('zero-export')).find((e) => e.kind === 'execution' && (e.data as { branch: string }).branch === 'then')!;
    expect(execution.data).toMatchObject({ condition: true, inputs: { 'grid.P': { value: -5, quality: 'good' } } });
    // Importing again: the else action releases the limit to 80 (raw 800), confirmed too.
    setPointValue(dev, gridRegister, 1);
    await eventually(() => dev.holding[10] === 800, 5_000);
    expect(await result(80)).toEqual([expect.objectContaining({ outcome: 'sent', status: 'confirmed', value: 80 })]);
  });

  it("a release within the rate limit is deferred, not dropped: sent at the interval's end, confirmed, journaled deferred then sent", async () => {
    await start(ZERO_EXPORT.replace('FOR', '0').replace('minIntervalMs: 0', 'minIntervalMs: 1000'));
    await eventually(async () => (await ruleState('zero-export')) === 'idle');
    await gridP(-5);
    await eventually(async () => (await t.raw.hget('comsrv:v1:a', '1')) === '45.000000', 3_000);
    // The export stops at once (well within the second since the cap was sent): the release is held back.
    await gridP(1);
    await eventually(async () => (await ruleState('zero-export')) === 'idle', 3_000);
    const journal = () => t.bus.rules.journal('zero-export', 50);
    const executions = await eventually(async () => {
      const j = await journal();
      const then = j.find((e) => e.kind === 'execution' && (e.data as { branch: string }).branch === 'then');
      const release = j.find((e) => e.kind === 'execution' && (e.data as { branch: string }).branch === 'else');
      return then && release ? { then, release } : undefined;
    }, 3_000);
    const due = executions.then.time + 1_000;
    expect(executions.release.time - executions.then.time).toBeLessThan(1_000);
    type Results = {
      deferred?: { index: number; at: number };
      actions: Array<{ outcome: string; at?: number; status?: string; commandId?: string; value: number }>;
    };
    const ofRelease = async () => (await journal()).filter((e) => e.kind === 'result' && e.fields.of === executions.release.entryId).reverse();
    const first = await eventually(async () => (await ofRelease())[0], 3_000);
    expect((first.data as Results).actions).toEqual([expect.objectContaining({ outcome: 'deferred', at: due, value: 80 })]);
    if (Date.now() < due - 50) expect(await t.raw.hget('comsrv:v1:a', '1')).toBe('45.000000');
    // At the interval's end the release goes out, and is confirmed by the device.
    await eventually(async () => (await t.raw.hget('comsrv:v1:a', '1')) === '80.000000', 3_000);
    const [again, sent] = await eventually(async () => {
      const r = await ofRelease();
      return r.length >= 2 ? r : undefined;
    }, 3_000);
    expect(again!.entryId).toBe(first.entryId);
    const data = sent!.data as Results;
    expect(data.deferred).toEqual({ index: 0, at: due });
    expect(data.actions).toEqual([expect.objectContaining({ outcome: 'sent', status: 'confirmed', value: 80 })]);
    const command = await commandResult(t.bus, data.actions[0]!.commandId!);
    expect(command).toMatchObject({ source: 'rule:zero-export', status: 'confirmed' });
    // Sent at its due time (not before: at most one command per control per second).
    expect((await t.bus.commands.command(data.actions[0]!.commandId!))!.createdAt).toBeGreaterThanOrEqual(due);
    expect((await t.bus.rules.read('zero-export'))!.stats).toMatchObject({ fires: 1, releases: 1, commands: 2, rateLimited: 1 });
  });

  it('a deferred command the rule will not send (the runtime stops before it is due) is journaled dropped, after its deferral', async () => {
    await start(ZERO_EXPORT.replace('FOR', '0').replace('minIntervalMs: 0', 'minIntervalMs: 5000'));
    await eventually(async () => (await ruleState('zero-export')) === 'idle');
    await gridP(-5);
    await eventually(async () => (await t.raw.hget('comsrv:v1:a', '1')) === '45.000000', 3_000);
    await gridP(1);
    const journal = () => t.bus.rules.journal('zero-export', 50);
    const release = await eventually(
      async () => (await journal()).find((e) => e.kind === 'execution' && (e.data as { branch: string }).branch === 'else'),
      3_000,
    );
    type Results = { deferred?: { index: number; at: number }; actions: Array<{ outcome: string; at?: number; message?: string; value: number }> };
    const ofRelease = async () => (await journal()).filter((e) => e.kind === 'result' && e.fields.of === release.entryId).reverse();
    const [first] = await eventually(async () => {
      const r = await ofRelease();
      return r.length >= 1 ? r : undefined;
    }, 3_000);
    const due = (first!.data as Results).actions[0]!.at!;
    await t.running!.stop();
    expect(Date.now()).toBeLessThan(due);
    const [deferred, dropped] = await ofRelease();
    expect((deferred!.data as Results).actions).toEqual([expect.objectContaining({ outcome: 'deferred', at: due, value: 80 })]);
    expect(dropped!.data).toEqual({
      branch: 'else',
      deferred: { index: 0, at: due },
      actions: [expect.objectContaining({ outcome: 'dropped', value: 80, message: 'the rule stopped before the command was due' })],
    });
    expect(await t.raw.hget('comsrv:v1:a', '1')).toBe('45.000000');
  });

  it('a bad-quality input blocks the rule: it does not fire and records why', async () => {
    await start(ZERO_EXPORT.replace('FOR', '0'));
    // Before any value: blocked, a missing value is never read as 0.
    await eventually(async () => (await t.bus.rules.read('zero-export'))?.context.blocked === 'grid.P is missing');
    await gridP(-5, 'bad');
    const r = await eventually(async () => {
      const x = await t.bus.rules.read('zero-export');
      return x?.context.blocked === 'grid.P is bad' ? x : undefined;
    }, 3_000);
    expect(r.state).toBe('idle');
    expect(r.stats.blocked).toBe(1);
    expect(r.stats.fires).toBeUndefined();
    await sleep(300);
    expect(await t.raw.keys('command:*')).toEqual([]);
  });

  it('two rules on one control: the higher priority wins, the other is journaled as overridden', async () => {
    await start(`rules:
  - id: high
    priority: 5
    trigger: { onChange: [grid.P] }
    when: "grid.P < 0"
    then: [ { control: { model: gw, name: export_limit, value: 20, minIntervalMs: 0 } } ]
  - id: low
    priority: 1
    trigger: { onChange: [grid.P] }
    when: "grid.P < 0"
    for: 300ms
    then: [ { control: { model: gw, name: export_limit, value: 10, minIntervalMs: 0 } } ]
`);
    await eventually(async () => (await ruleState('low')) === 'idle' && (await ruleState('high')) === 'idle');
    await gridP(-1);
    const low = await eventually(async () => (await t.bus.rules.journal('low')).find((e) => e.kind === 'result'), 5_000);
    expect((low.data as { actions: unknown[] }).actions).toEqual([expect.objectContaining({ outcome: 'overridden', by: 'high', value: 10 })]);
    expect((await t.bus.rules.read('low'))!.stats.overridden).toBe(1);
    await eventually(async () => (await t.raw.hget('comsrv:v1:a', '1')) === '20.000000', 5_000);
  });

  it('a command m2c refuses (beyond the point limits) is journaled rejected; the step sent with it stays committed', async () => {
    await start(`rules:
  - id: too-high
    trigger: { onChange: [grid.P] }
    when: "grid.P < 0"
    then: [ { control: { model: gw, name: export_limit, value: 95 } } ]
`);
    await eventually(async () => (await ruleState('too-high')) === 'idle');
    await gridP(-1);
    const result = await eventually(async () => (await t.bus.rules.journal('too-high')).find((e) => e.kind === 'result'), 5_000);
    expect((result.data as { actions: unknown[] }).actions).toEqual([
      expect.objectContaining({
        outcome: 'rejected',
        value: 95,
        message: expect.stringMatching(/^m2c: EVOLTAGE m2c: 95(\.0+)? is above the maximum 80 of gw.export_limit$/),
      }),
    ]);
    const r = (await t.bus.rules.read('too-high'))!;
    expect(r.state).toBe('active');
    expect(r.stats).toMatchObject({ fires: 1, commands: 0 });
    expect(await t.raw.keys('command:*')).toEqual([]);
  });

  it('rule_commit refuses a stale version and writes nothing', async () => {
    const initial = initialRule({ forMs: 0, cooldownMs: 0 });
    const r = await t.bus.rules.init('x', initial, {});
    expect(r).toMatchObject({ created: true, state: 'idle', version: 1 });
    const to = { state: 'disabled' as const, context: initial.context };
    expect(await t.bus.rules.commit({ id: 'x', expectedVersion: 1, to, ts: 1_000, who: 'op' })).toEqual({ version: 2, entryId: '', commands: [] });
    // A sequence's progress goes with a step, under the same version check; '' removes it.
    const progress = JSON.stringify({ stage: 1, startedAt: 1_500, prev: [true, false] });
    expect(await t.bus.rules.commit({ id: 'x', expectedVersion: 2, to, ts: 1_500, who: 'op', sequence: progress })).toMatchObject({ version: 3 });
    const before = await t.raw.hgetall('rule:x');
    expect(before.sequence).toBe(progress);
    await expect(t.bus.rules.commit({ id: 'x', expectedVersion: 1, to: initial, ts: 2_000, who: 'op', sequence: '' })).rejects.toBeInstanceOf(
      RuleConflictError,
    );
    expect(await t.raw.hgetall('rule:x')).toEqual(before);
    expect(await t.raw.exists('rule:executions')).toBe(0);
    expect(await t.bus.rules.init('x', initial, {})).toMatchObject({ state: 'disabled', sequence: progress });
    // A step without a progress leaves it; an empty one removes it.
    await t.bus.rules.commit({ id: 'x', expectedVersion: 3, to, ts: 2_500, who: 'op' });
    expect((await t.bus.rules.read('x'))!.sequence).toBe(progress);
    await t.bus.rules.commit({ id: 'x', expectedVersion: 4, to, ts: 3_000, who: 'op', sequence: '' });
    expect(await t.raw.hexists('rule:x', 'sequence')).toBe(0);
  });
});

describe('rule journals in Redis', () => {
  it("rule_commit writes the actor's report with the step; a refused commit writes neither", async () => {
    const initial = initialRule({ forMs: 0, cooldownMs: 0 });
    await t.bus.rules.init('y', initial, {});
    const to = { state: 'active' as const, context: initial.context };
    const report = {
      actor: 'rule/y',
      fields: { state: '"active"', context: '{"version":2}', updatedAt: 1_000 },
      transition: { ts: 1_000, event: 'change', from: '"idle"', to: '"active"' },
    };
    expect(await t.bus.rules.commit({ id: 'y', expectedVersion: 1, to, ts: 1_000, who: 'rule/y', report })).toMatchObject({ version: 2 });
    expect(await t.raw.hgetall('actor:rule/y')).toMatchObject({ state: '"active"', context: '{"version":2}', version: '1' });
    expect(await t.raw.sismember('actors', 'rule/y')).toBe(1);
    expect(await t.bus.actors.transitions('rule/y')).toEqual([{ ts: 1_000, event: 'change', from: '"idle"', to: '"active"' }]);
    const before = { rule: await t.raw.hgetall('rule:y'), actor: await t.raw.hgetall('actor:rule/y') };
    const stale = { ...report, fields: { ...report.fields, state: '"idle"' } };
    await expect(t.bus.rules.commit({ id: 'y', expectedVersion: 1, to: initial, ts: 2_000, who: 'rule/y', report: stale })).rejects.toBeInstanceOf(
      RuleConflictError,
    );
    expect({ rule: await t.raw.hgetall('rule:y'), actor: await t.raw.hgetall('actor:rule/y') }).toEqual(before);
    expect(await t.raw.xlen('actor:rule/y:transitions')).toBe(1);
  });

  it('rule_record journals the results of several executions in one call; one bad record and nothing is written', async () => {
    const ids = await t.bus.rules.recordMany([
      { id: 'a', of: '1-0', results: { branch: 'then', actions: [] }, counters: { commands: 1 }, ts: 1_000 },
      { id: 'b', of: '2-0', results: { branch: 'else', actions: [] }, counters: { commands: 2, overridden: 1 }, ts: 1_001 },
      { id: 'a', of: '3-0', results: { branch: 'else', actions: [] }, counters: {}, ts: 1_002 },
    ]);
    expect(ids).toHaveLength(3);
    expect((await t.bus.rules.journal('a')).map((e) => [e.kind, e.fields.of])).toEqual([
      ['result', '3-0'],
      ['result', '1-0'],
    ]);
    expect(await t.raw.hgetall('rule:stats:a')).toEqual({ commands: '1' });
    expect(await t.raw.hgetall('rule:stats:b')).toEqual({ commands: '2', overridden: '1' });
    const length = await t.raw.xlen('rule:executions');
    await expect(
      t.bus.rules.recordMany([
        { id: 'a', of: '4-0', results: {}, counters: { commands: 1 }, ts: 1_003 },
        { id: 'b', of: '5-0', results: {}, counters: { commands: 1.5 }, ts: 1_004 },
      ]),
    ).rejects.toThrow(/rule_record: increment of commands is not an integer/);
    expect(await t.raw.xlen('rule:executions')).toBe(length);
    expect(await t.raw.hgetall('rule:stats:a')).toEqual({ commands: '1' });
  });
});

describe('rule routes', () => {
  it('list, detail, enable/disable (operator, audited), dry run that writes nothing, and each error', async () => {
    await start(ZERO_EXPORT.replace('FOR', '10s'), GATEWAY);
    const port = await eventually(() => t.running!.gatewayPort());
    const call = async (method: string, path: string, token?: string) => {
      const r = await fetch(`http://127.0.0.1:${port}${path}`, { method, headers: token ? { authorization: `Bearer ${token}` } : {} });
      return { status: r.status, body: (await r.json()) as Record<string, unknown> };
    };
    await eventually(async () => (await ruleState('zero-export')) === 'idle');
    expect((await call('GET', '/api/v1/rules', 'v-token')).body.rules).toEqual([
      expect.objectContaining({ id: 'zero-export', state: 'idle', priority: 10, when: 'grid.P < -2' }),
    ]);
    expect((await call('GET', '/api/v1/rules', undefined)).status).toBe(401);
    expect((await call('GET', '/api/v1/rules/nope', 'v-token')).status).toBe(404);

    // Dry run: grid.P has no value yet (blocked), then with one; nothing written either time.
    await gridP(-5);
    await eventually(async () => (await ruleState('zero-export')) === 'holding', 3_000);
    await t.running!.stop();
    t.running = undefined;
    await start(ZERO_EXPORT.replace('FOR', '10s'), GATEWAY);
    const port2 = await eventually(() => t.running!.gatewayPort());
    const call2 = async (method: string, path: string, token?: string) => {
      const r = await fetch(`http://127.0.0.1:${port2}${path}`, { method, headers: token ? { authorization: `Bearer ${token}` } : {} });
      return { status: r.status, body: (await r.json()) as Record<string, unknown> };
    };
    const dump = async () => {
      const keys = (await t.raw.keys('*'))
        .filter((k) => !k.startsWith('actor:') && k !== 'actors' && !k.startsWith('comsrv:') && !k.startsWith('modsrv:gw'))
        .sort();
      return Promise.all(keys.map(async (k) => [k, await t.raw.dump(k)]));
    };
    const before = await dump();
    const dry = await call2('POST', '/api/v1/rules/zero-export/evaluate', 'v-token');
    expect(dry.status).toBe(200);
    expect(dry.body).toMatchObject({
      inputs: { 'grid.P': { value: -5, quality: 'good' } },
      blocked: null,
      condition: true,
      wouldRun: 'then',
      then: [{ kind: 'control', model: 'gw', name: 'export_limit', value: 45 }],
    });
    expect(await dump()).toEqual(before);
    expect((await call2('POST', '/api/v1/rules/nope/evaluate', 'v-token')).status).toBe(404);

    const detail = await call2('GET', '/api/v1/rules/zero-export', 'v-token');
    expect(detail.body).toMatchObject({ id: 'zero-export', state: 'holding', definition: { forMs: 10_000 } });

    expect((await call2('POST', '/api/v1/rules/zero-export/disable', 'v-token')).status).toBe(403);
    expect((await call2('POST', '/api/v1/rules/nope/disable', 'o-token')).status).toBe(404);
    expect((await call2('POST', '/api/v1/rules/zero-export/disable', 'o-token')).body).toEqual({ id: 'zero-export', state: 'disabled', changed: true });
    expect((await call2('POST', '/api/v1/rules/zero-export/disable', 'o-token')).body).toMatchObject({ changed: false });
    // The actor takes the operator's step: the rule stays disabled and does not fire.
    await gridP(-6);
    await sleep(300);
    expect(await ruleState('zero-export')).toBe('disabled');
    expect((await call2('POST', '/api/v1/rules/zero-export/enable', 'o-token')).body).toMatchObject({ state: 'idle', changed: true });
    const audit = (await t.raw.xrange('audit:rules', '-', '+')).map(([, f]) => `${f[1]} ${f[5]} ${f[7]}`);
    expect(audit).toEqual(['otto disable disabled', 'otto disable unchanged (disabled)', 'otto enable idle']);
  });
});
