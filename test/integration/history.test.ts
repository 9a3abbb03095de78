/**
 * History against a real private VictoriaMetrics (the InfluxDB stand-in: it
 * takes @influxdata/influxdb-client writes at /api/v2/write unchanged) and a
 * private redis-server: what c2m appends to the outbox comes back from the
 * query API with its timestamps; downsampling over a known waveform; the CSV
 * answer; bad queries. Its faults (VictoriaMetrics down at start, killed with
 * SIGKILL; the runtime killed with kill -9) are in test/faults/.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { historyCsv, HistoryQueries, HistoryQueryError, type HistoryAnswer } from '../../actors/history/query.js';
import { Http } from '../../runtime/gateway/http.js';
import { historyRoutes } from '../../runtime/gateway/routes/history.js';
import { gatewaySchema } from '../../runtime/config/schema.js';
import { caughtUp as caughtUpIn, startWriter, useHistoryRig } from '../helpers/historyRig.js';

const rig = useHistoryRig();
let queries: HistoryQueries;

beforeAll(async () => {
  await rig.bus.site.load({ site: 't', json: '{"site":"t"}', mapping: new Map([['1001:m:1', 'pv1:P']]), controls: new Map(), models: ['pv1'] });
  queries = new HistoryQueries({ url: rig.vm.url, maxPoints: 2_000 });
});

const caughtUp = (backend: string) => caughtUpIn(rig.raw, rig.vm.url, backend);

const iso = (ms: number) => new Date(ms).toISOString();

describe('history', () => {
  it('values that c2m appended come back from the query API with their timestamps and qualities', async () => {
    await startWriter(rig, 't1');
    const base = Math.floor(Date.now() / 1_000) * 1_000 - 30_000;
    for (let i = 0; i < 20; i++) {
      await rig.bus.telemetry.c2m('2001', base + i * 1_000, [
        { type: 'm', id: 7, value: i * 1.5, quality: null },
        { type: 's', id: 1, value: i % 2, quality: null },
      ]);
    }
    await rig.bus.telemetry.c2m('2001', base + 20_000, [{ type: 'm', id: 7, value: null, quality: 'comm-failure' }]);
    await rig.bus.telemetry.c2m('1001', base + 3_000, [{ type: 'm', id: 1, value: 17.5, quality: null }]); // mapped to pv1:P
    await rig.bus.telemetry.modelSet('pv9', base + 5_000, [{ name: 'S', value: 42.25, quality: 'good' }]);
    await caughtUp('t1');
    const a = await queries.query({ series: 'channel/2001/m/7,model/pv9/S', from: iso(base), to: iso(base + 19_000), step: '1s', agg: 'last' });
    expect(a.timestamps).toEqual(Array.from({ length: 20 }, (_, i) => base + i * 1_000));
    expect(a.series[0]).toEqual({ id: 'channel/2001/m/7', values: Array.from({ length: 20 }, (_, i) => i * 1.5) });
    expect(a.series[1]!.values.filter((v) => v !== null)).toEqual([42.25]);
    expect(a.series[1]!.values[5]).toBe(42.25);
    // The quality mark is a sample of the quality series only (3 = comm-failure).
    const q = (await (
      await fetch(`${rig.vm.url}/api/v1/query?query=${encodeURIComponent('voltage_point_quality{channel="2001",point="7"}')}&time=${(base + 20_000) / 1_000}`)
    ).json()) as { data: { result: Array<{ value: [number, string] }> } };
    expect(q.data.result[0]!.value[1]).toBe('3');
    // A channel point mapped onto a model value is kept under both names.
    const mapped = await queries.query({ series: 'model/pv1/P,channel/1001/m/1', from: iso(base + 3_000), to: iso(base + 3_000), step: '1s', agg: 'last' });
    expect(mapped.series.map((s) => s.values)).toEqual([[17.5], [17.5]]);
    expect(await queries.list()).toEqual(expect.arrayContaining(['channel/1001/m/1', 'channel/2001/m/7', 'channel/2001/s/1', 'model/pv1/P', 'model/pv9/S']));
  });

  it('quality good → bad → good comes back at every value, read with last_over_time over qualityEveryMs; written only where it changed', async () => {
    await startWriter(rig, 't6');
    const base = Math.floor(Date.now() / 1_000) * 1_000 - 40_000;
    // 10 good values, 5 polls with no answer (quality marks, bad), then good again (the channel sends `good` once, as it changed).
    const want: number[] = [];
    for (let i = 0; i < 30; i++) {
      const bad = i >= 10 && i < 15;
      want.push(bad ? 2 : 0);
      await rig.bus.telemetry.c2m('2101', base + i * 1_000, [
        bad ? { type: 'm', id: 1, value: null, quality: 'bad' } : { type: 'm', id: 1, value: i, quality: i === 15 ? 'good' : null },
      ]);
    }
    await caughtUp('t6');
    const get = async (path: string) => (await fetch(`${rig.vm.url}${path}`)).text();
    const qs = new URLSearchParams({
      query: 'last_over_time(voltage_point_quality{channel="2101",type="m",point="1"}[60s])',
      start: String(base / 1_000),
      end: String((base + 29_000) / 1_000),
      step: '1s',
      nocache: '1',
    });
    const r = JSON.parse(await get(`/api/v1/query_range?${qs}`)) as { data: { result: Array<{ values: Array<[number, string]> }> } };
    expect(r.data.result[0]!.values.map(([, v]) => Number(v))).toEqual(want);
    // The quality series holds the first value's, the five marks and the change back: 7 samples for 30 polls (the default qualityEveryMs, 60 s).
    const exp = await get(`/api/v1/export?match[]=${encodeURIComponent('voltage_point_quality{channel="2101",type="m",point="1"}')}`);
    expect((JSON.parse(exp) as { values: number[]; timestamps: number[] }).timestamps).toEqual([0, 10, 11, 12, 13, 14, 15].map((i) => base + i * 1_000));
  });

  it('downsamples a known waveform: mean, min, max, last and count per step, nulls in a gap; CSV the same', async () => {
    await startWriter(rig, 't2');
    const base = Math.floor(Date.now() / 10_000) * 10_000 - 60_000;
    // A sawtooth 0..9 every 100 ms for 5 s, then nothing for 2 s, then 1 s of 100.
    const samples: Array<[number, number]> = [];
    for (let i = 1; i <= 50; i++) samples.push([base + i * 100, i % 10]);
    for (let i = 71; i <= 80; i++) samples.push([base + i * 100, 100]);
    for (const [ts, v] of samples) await rig.bus.telemetry.c2m('3001', ts, [{ type: 'm', id: 1, value: v, quality: null }]);
    await caughtUp('t2');
    const range = { series: 'channel/3001/m/1', from: iso(base + 1_000), to: iso(base + 8_000), step: '1s' };
    const buckets = Array.from({ length: 8 }, (_, k) => samples.filter(([ts]) => ts > base + k * 1_000 && ts <= base + (k + 1) * 1_000).map(([, v]) => v));
    const expectAgg = async (agg: string, f: (vs: number[]) => number | null) => {
      const a = await queries.query({ ...range, agg });
      expect(a.timestamps).toEqual(Array.from({ length: 8 }, (_, k) => base + (k + 1) * 1_000));
      expect(a.series[0]!.values, agg).toEqual(buckets.map((vs) => (vs.length === 0 && agg !== 'count' ? null : f(vs))));
      return a;
    };
    await expectAgg('mean', (vs) => vs.reduce((s, v) => s + v, 0) / vs.length);
    await expectAgg('min', (vs) => Math.min(...vs));
    await expectAgg('max', (vs) => Math.max(...vs));
    await expectAgg('count', (vs) => vs.length);
    const last: HistoryAnswer = await expectAgg('last', (vs) => vs[vs.length - 1]!);
    const csv = historyCsv(last).split('\r\n');
    expect(csv[0]).toBe('time,channel/3001/m/1');
    expect(csv[1]).toBe(`${iso(base + 1_000)},0`);
    expect(csv[6]).toBe(`${iso(base + 6_000)},`);
    expect(csv[8]).toBe(`${iso(base + 8_000)},100`);
  });

  it('the newest steps aggregate their own samples: not a copy of the step before (VictoriaMetrics does that within 1 s of now unless told not to)', async () => {
    await startWriter(rig, 't5');
    // Two steps of 500 ms ending at `end`, 2–2.5 s ahead: 10s in the first, 20s in the second.
    const end = Math.ceil(Date.now() / 500) * 500 + 2_000;
    for (let i = 9; i >= 0; i--) await rig.bus.telemetry.c2m('6001', end - i * 100, [{ type: 'm', id: 1, value: i >= 5 ? 10 : 20, quality: null }]);
    await caughtUp('t5');
    // Asked as a trend asks right after a step ended: the query's time within the adjustment's 1 s.
    while (Date.now() < end - 100) await new Promise((r) => setTimeout(r, 20));
    const a = await queries.query({ series: 'channel/6001/m/1', from: iso(end - 1_000), to: iso(end), step: '500ms', agg: 'mean' });
    expect(Date.now()).toBeLessThan(end + 900);
    expect(a.timestamps).toEqual([end - 1_000, end - 500, end]);
    expect(a.series[0]!.values).toEqual([null, 10, 20]);
  });

  it('refuses bad queries with typed errors: unknown series, reversed range, too many points, bad input', async () => {
    const codeOf = (p: Parameters<HistoryQueries['query']>[0]) =>
      queries.query(p).then(
        () => 'ok',
        (e: unknown) => (e instanceof HistoryQueryError ? `${e.status} ${e.code}` : String(e)),
      );
    expect(await codeOf({ series: 'model/nope/P', from: '-1h' })).toBe('404 UNKNOWN_SERIES');
    expect(await codeOf({ series: 'channel/2001/m/7', from: '-1h', step: '2d' })).toBe('400 BAD_QUERY');
    expect(await codeOf({ series: 'channel/2001/m/7', from: '-1h', to: '-2h' })).toBe('400 REVERSED_RANGE');
    expect(await codeOf({ series: 'channel/2001/m/7', from: '-24h', step: '1s' })).toBe('400 TOO_MANY_POINTS');
    expect(await codeOf({ series: 'channel/2001/m/7', from: 'yesterday' })).toBe('400 BAD_QUERY');
    expect(await codeOf({ series: 'channel/2001/m/7', agg: 'median' })).toBe('400 BAD_QUERY');
    expect(await codeOf({ series: 'pv1/P' })).toBe('400 BAD_QUERY');
  });

  it('the routes: JSON, CSV with format=csv, 404 for an unknown series, 400 beyond the points limit, viewer token needed', async () => {
    await startWriter(rig, 't4');
    const base = Math.floor(Date.now() / 1_000) * 1_000 - 10_000;
    await rig.bus.telemetry.c2m('5001', base, [{ type: 'm', id: 2, value: 3.25, quality: null }]);
    await caughtUp('t4');
    const http = new Http(gatewaySchema.parse({ port: 0 }), [{ name: 'v', role: 'viewer', token: 'view' }]);
    historyRoutes(http, queries);
    http.notFound();
    const port = await http.listen();
    rig.stops.push(async () => http.close());
    const get = async (path: string, token = 'view') => {
      const r = await fetch(`http://127.0.0.1:${port}${path}`, { headers: { authorization: `Bearer ${token}` } });
      return { status: r.status, type: r.headers.get('content-type'), text: await r.text() };
    };
    const q = `series=channel/5001/m/2&from=${base}&to=${base}&step=1s&agg=last`;
    const json = await get(`/api/v1/history?${q}`);
    expect(json.status).toBe(200);
    expect(JSON.parse(json.text)).toMatchObject({ timestamps: [base], series: [{ id: 'channel/5001/m/2', values: [3.25] }] });
    const csv = await get(`/api/v1/history?${q}&format=csv`);
    expect([csv.status, csv.type, csv.text]).toEqual([200, 'text/csv; charset=utf-8', `time,channel/5001/m/2\r\n${iso(base)},3.25\r\n`]);
    expect(JSON.parse((await get('/api/v1/history?series=model/none/X')).text)).toMatchObject({ error: { code: 'UNKNOWN_SERIES' } });
    expect((await get('/api/v1/history?series=model/none/X')).status).toBe(404);
    expect((await get('/api/v1/history?series=channel/5001/m/2&from=-30d&step=1s')).status).toBe(400);
    expect((await get(`/api/v1/history?${q}`, 'wrong')).status).toBe(401);
    expect(JSON.parse((await get('/api/v1/history/series')).text).series).toContain('channel/5001/m/2');
  });
});
