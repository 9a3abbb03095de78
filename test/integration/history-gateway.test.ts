/**
 * History end to end through the real runtime and its gateway process: a
 * virtual channel's counter goes through c2m, the outbox and the history
 * writer (the history kind, under its supervisor) into a private
 * VictoriaMetrics, and comes back from GET /api/v1/history — as JSON, as CSV
 * for `Accept: text/csv`, for a viewer token; with 400/401/404 for bad calls.
 * The consumer group is made before the channels start: the counter's first
 * value (0) is in history. An alarm's transitions reach history through the
 * same outbox (alarm_commit appends them), as `alarm/<id>`.
 */
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../runtime/config/load.js';
import { sha256 } from '../../runtime/gateway/http.js';
import { startRuntime, type RunningRuntime } from '../../runtime/runtime.js';
import { eventually, quietLog, spawnRedis, writeSite, type RedisServer } from '../helpers/servers.js';
import { forceFlush, spawnVictoria, type VictoriaServer } from '../helpers/victoria.js';

let redis: RedisServer;
let vm: VictoriaServer;
let rt: RunningRuntime;
let base = '';
const tokens = { viewer: 'hv-token', nobody: 'unknown-token' };

beforeAll(async () => {
  [redis, vm] = await Promise.all([spawnRedis(), spawnVictoria()]);
  const site = loadConfig(
    writeSite({
      'site.yaml': `gateway:
  port: 0
  tokens: [ { name: vera, role: viewer, sha256: ${sha256(tokens.viewer)} } ]
channels:
  - id: h1
    protocol: virtual
    pollMs: 100
    points:
      - { type: m, id: 1, name: P, sim: { kind: counter, start: 0, step: 1 } }
models:
  - id: pv
    channel: h1
    measurements: { P: {} }
    calculations: { twice: { expr: "P * 2" } }
alarms:
  - { id: pv.high, model: pv, when: { point: P, above: 5 }, severity: minor, message: "P at {value}" }
history:
  backends: [ { id: vm, url: "${vm.url}" } ]
  batchMaxMs: 50
  maxPoints: 5000
`,
    }),
  );
  rt = await startRuntime(site, { redisUrl: redis.url, log: quietLog });
  base = `http://127.0.0.1:${await eventually(() => rt.gatewayPort())}`;
}, 30_000);
afterAll(async () => {
  await rt?.stop();
  await Promise.all([vm?.stop(), redis?.stop()]);
  if (vm) rmSync(vm.dataDir, { recursive: true, force: true });
});

async function get(path: string, opts: { token?: string; accept?: string } = {}) {
  const headers: Record<string, string> = { authorization: `Bearer ${opts.token ?? tokens.viewer}` };
  if (opts.accept) headers.accept = opts.accept;
  const r = await fetch(base + path, { headers });
  return { status: r.status, type: r.headers.get('content-type'), text: await r.text() };
}
const json = async (path: string) =>
  JSON.parse((await get(path)).text) as { series: Array<{ id: string; values: Array<number | null> }>; timestamps: number[] };

describe('history through the gateway', () => {
  it('lists the series the writer stored: the channel point, the model value mapped from it, the calculated one', async () => {
    const list = await eventually(
      async () => {
        await forceFlush(vm.url);
        const r = await get('/api/v1/history/series');
        const ids = (JSON.parse(r.text) as { series?: string[] }).series ?? [];
        return ['channel/h1/m/1', 'model/pv/P', 'model/pv/twice'].every((id) => ids.includes(id)) ? ids : undefined;
      },
      20_000,
      200,
    );
    expect(list).toEqual(expect.arrayContaining(['channel/h1/m/1', 'model/pv/P', 'model/pv/twice']));
    const actor = await get('/api/v1/actors/history/vm');
    expect(JSON.parse(actor.text)).toMatchObject({ status: 'running' });
  });

  it('every counter value from the first poll on, once: count = max + 1, min = 0', async () => {
    await eventually(
      async () => {
        await forceFlush(vm.url);
        // Steps of a minute tile (t − 1m, t] without gap or overlap, from before the start to past now.
        const q = `series=channel/h1/m/1&from=-5m&to=${Date.now() + 120_000}&step=1m`;
        const [count, max, min] = await Promise.all(['count', 'max', 'min'].map((agg) => json(`/api/v1/history?${q}&agg=${agg}`)));
        const sum = (a: Array<number | null>) => a.reduce<number>((s, v) => s + (v ?? 0), 0);
        const top = Math.max(...max!.series[0]!.values.map((v) => v ?? -1));
        const bottom = Math.min(...min!.series[0]!.values.map((v) => v ?? Infinity));
        return top >= 20 && bottom === 0 && sum(count!.series[0]!.values) === top + 1;
      },
      20_000,
      300,
    );
  });

  it('an alarm raised by the counter is in history too, through the same outbox: 1 while active', async () => {
    const max = await eventually(
      async () => {
        await forceFlush(vm.url);
        const r = await get('/api/v1/history?series=alarm/pv.high&from=-5m&step=10s&agg=max');
        if (r.status !== 200) return undefined;
        const values = (JSON.parse(r.text) as { series: Array<{ values: Array<number | null> }> }).series[0]!.values;
        return values.some((v) => v === 1) ? values : undefined;
      },
      20_000,
      300,
    );
    expect(max.every((v) => v === null || v === 0 || v === 1)).toBe(true);
    const state = JSON.parse((await get('/api/v1/alarms/pv.high')).text) as { state?: string; alarm?: { state?: string } };
    expect(JSON.stringify(state)).toMatch(/unacknowledged/);
  });

  it('Accept: text/csv answers CSV: a time column and one column a series, the calculation twice a value of the measurement', async () => {
    const csv = () => get('/api/v1/history?series=model/pv/P,model/pv/twice&from=-20s&step=1s&agg=last', { accept: 'text/csv' });
    const fullRows = (text: string) =>
      text
        .trimEnd()
        .split('\r\n')
        .slice(1)
        .map((l) => l.split(','))
        .filter(([, p, t]) => p !== '' && t !== '');
    // The site has run for a few seconds by now; wait for a few full seconds of history.
    const r = await eventually(
      async () => {
        const x = await csv();
        return fullRows(x.text).length >= 4 ? x : undefined;
      },
      15_000,
      250,
    );
    expect(r.status).toBe(200);
    expect(r.type).toBe('text/csv; charset=utf-8');
    const [head, ...rows] = r.text.trimEnd().split('\r\n');
    expect(head).toBe('time,model/pv/P,model/pv/twice');
    const full = fullRows(r.text);
    for (const [time, p, t] of full) {
      expect(Number.isNaN(Date.parse(time!))).toBe(false);
      // Twice a value P had within that second (a coalesced calculation may skip the step's last poll).
      const half = Number(t) / 2;
      expect(Number.isInteger(half) && half <= Number(p) && half > Number(p) - 10, `${time}: ${p} ${t}`).toBe(true);
    }
    // The same query without the header is JSON.
    const j = await get('/api/v1/history?series=model/pv/P,model/pv/twice&from=-20s&step=1s&agg=last', { accept: 'application/json' });
    expect(j.type).toBe('application/json');
    expect((JSON.parse(j.text) as { timestamps: number[] }).timestamps).toHaveLength(rows.length);
  });

  it('bad calls: 401 without a known token, 404 for an unknown series, 400 for a reversed range, too many points or a bad agg', async () => {
    const code = async (path: string, token?: string) => {
      const r = await get(path, token ? { token } : {});
      return `${r.status} ${(JSON.parse(r.text) as { error: { code: string } }).error.code}`;
    };
    expect(await code('/api/v1/history?series=model/pv/P', tokens.nobody)).toBe('401 UNAUTHORIZED');
    expect(await code('/api/v1/history?series=model/pv/Nope')).toBe('404 UNKNOWN_SERIES');
    expect(await code('/api/v1/history?series=model/pv/P&from=-1m&to=-2m')).toBe('400 REVERSED_RANGE');
    expect(await code('/api/v1/history?series=model/pv/P&from=-1d&step=1s')).toBe('400 TOO_MANY_POINTS');
    expect(await code('/api/v1/history?series=model/pv/P&agg=median')).toBe('400 BAD_QUERY');
    expect(await code('/api/v1/history')).toBe('400 BAD_QUERY');
  });
});
