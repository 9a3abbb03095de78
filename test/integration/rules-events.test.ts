/**
 * The event side of rules against a private redis-server and the real runtime:
 * a window function in the condition; a rule alarm raised, listed and
 * acknowledged like any alarm, then cleared; a notify event in rule:events;
 * a cron trigger (every second); an alarm trigger on the rule alarm's changes;
 * a sequence trigger; and the `rule/*` WebSocket topic carrying the steps and
 * executions. One runtime for all of it (kept short).
 */
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { loadConfig } from '../../runtime/config/load.js';
import { sha256 } from '../../runtime/gateway/http.js';
import { eventually, quietLog, writeSite } from '../helpers/servers.js';
import { ruleSite } from '../helpers/ruleSite.js';
import { privateRedisSuite } from '../helpers/suite.js';
import { startRuntime } from '../../runtime/runtime.js';

const t = privateRedisSuite();

const SITE = `${ruleSite(['P', 'Q'])}gateway:
  port: 0
  tokens:
    - { name: vera, role: viewer, sha256: ${sha256('v-token')} }
rules:
  - id: export-alarm
    trigger: { onChange: [grid.P], every: 100ms }
    when: "avg(grid.P, 500ms) < -2"
    then:
      - alarm: { id: site.export, severity: major, message: "Exporting" }
      - notify: { message: "exporting {grid.P} kW" }
    else:
      - alarm: { id: site.export, clear: true }
  - id: every-second
    trigger: { cron: "* * * * * *" }
    then:
      - notify: { message: "tick" }
  - id: on-site-alarm
    trigger: { alarm: "site.*" }
    then:
      - notify: { message: "a site alarm changed", severity: minor }
  - id: q-sequence
    trigger: { sequence: ["grid.Q > 5", "grid.Q < 1"], within: 2s }
    then:
      - control: { model: gw, name: export_limit, value: 7, minIntervalMs: 0 }
`;

const set = (name: string, value: number) => t.bus.telemetry.modelSet('grid', Date.now(), [{ name, value, quality: 'good' }]);
const messages = async (rule: string) => (await t.bus.rules.events(1_000)).filter((e) => e.rule === rule).map((e) => e.message);

async function start(): Promise<number> {
  t.running = await startRuntime(loadConfig(writeSite({ 'site.yaml': SITE })), { redisUrl: t.server.url, log: quietLog });
  const port = await eventually(() => t.running!.gatewayPort());
  await eventually(async () => (await t.bus.rules.read('q-sequence'))?.state === 'idle');
  return port;
}

describe('rule events, windows, rule alarms and the rule/* topic', () => {
  it('a window condition raises a rule alarm (listed and acknowledged like any alarm) and notifies; the alarm trigger sees it; it clears', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${await start()}/ws?token=v-token`);
    t.cleanups.push(async () => ws.close());
    const seen: any[] = [];
    ws.on('message', (m) => seen.push(JSON.parse(String(m))));
    await new Promise((r) => ws.once('open', r));
    ws.send(JSON.stringify({ op: 'subscribe', topics: ['rule/*'] }));
    await eventually(() => seen.filter((m) => m.snapshot && String(m.topic).startsWith('rule/')).length === 4);

    await set('P', -5);
    await eventually(async () => (await t.bus.alarms.get('site.export'))?.state === 'unacknowledged', 5_000);
    expect((await t.bus.alarms.list()).map((a) => a.id)).toContain('site.export');
    expect(await messages('export-alarm')).toEqual(['exporting -5 kW']);
    await eventually(async () => (await messages('on-site-alarm')).length === 1, 3_000);
    await t.bus.alarms.act('site.export', { type: 'ACK', now: Date.now() }, 'vera', 'seen');
    // The average over 500 ms crosses -2 some time after the value does: then the else branch clears the alarm.
    await set('P', 3);
    await eventually(async () => (await t.bus.alarms.get('site.export'))?.state === 'normal', 5_000);
    await eventually(async () => (await messages('on-site-alarm')).length === 3, 3_000);
    const step = await eventually(() => seen.find((m) => m.topic === 'rule/export-alarm' && m.event === 'step' && m.execution?.branch === 'then'));
    expect(step).toMatchObject({ to: 'active', rule: { id: 'export-alarm' } });
    await eventually(() => seen.find((m) => m.topic === 'rule/export-alarm' && m.event === 'notify' && m.notification?.message === 'exporting -5 kW'));
    await eventually(() => seen.find((m) => m.topic === 'rule/export-alarm' && m.event === 'result'));
  });

  it('a cron trigger fires every second; a sequence fires when its steps come in order', async () => {
    await start();
    await eventually(async () => (await messages('every-second')).length >= 2, 4_000);
    const { fires } = (await t.bus.rules.read('every-second'))!.stats;
    expect(fires).toBeGreaterThanOrEqual(2);
    expect((await t.bus.rules.read('every-second'))!.state).toMatch(/idle|cooldown/);

    await set('Q', 0);
    await set('Q', 9);
    await set('Q', 0);
    await eventually(async () => (await t.raw.hget('comsrv:v1:a', '1')) === '7.000000', 5_000);
    expect((await t.bus.rules.read('q-sequence'))!.stats.fires).toBe(1);
  });
});
