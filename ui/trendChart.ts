/**
 * The dashboard's trend: the selected model's values over the last 15 minutes,
 * drawn by uPlot (canvas; ~22 kB gzipped, bundled with the page). The past
 * comes from the history API (only the series the database holds are asked
 * for, so a value never written yet is not a 404); the feed then appends the
 * model's values as they come. The chart is redrawn at most once a second
 * whatever the feed's rate, and keeps 15 minutes: a page left open does not grow.
 */
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { api, el, type FeedMessage } from './common.js';

export interface TrendModel {
  readonly id: string;
  readonly name: string;
  readonly values: ReadonlyArray<{ readonly name: string; readonly unit: string | null }>;
}
interface HistoryAnswer {
  readonly timestamps: number[];
  readonly series: ReadonlyArray<{ readonly id: string; readonly values: Array<number | null> }>;
}

const WINDOW_MS = 15 * 60_000;
const STEP = '5s';
const REDRAW_MS = 1_000;
const COLORS = ['#2456c7', '#c0262d', '#138a4a', '#b25e00', '#7a3fc7', '#0f8b8d', '#667085', '#d0458b'];

export function trendSection(models: readonly TrendModel[]): { section: HTMLElement; onMessage(m: FeedMessage): void } {
  const select = el('select', { name: 'trend-model', 'aria-label': 'trend model' }, ...models.map((m) => el('option', { value: m.id }, `${m.name} (${m.id})`)));
  const hint = el('span', { class: 'hint' }, '');
  const box = el('div', { class: 'trend', 'data-trend-points': '0' });
  let chart: uPlot | undefined;
  let model: TrendModel | undefined;
  // Columns: times in seconds (uPlot's unit), then one array a value, aligned.
  let times: number[] = [];
  let columns: Array<Array<number | null>> = [];
  let dirty = false;
  let generation = 0;

  const points = () => columns.reduce((n, c) => n + c.reduce<number>((k, v) => k + (v === null ? 0 : 1), 0), 0);
  const redraw = () => {
    if (!chart) return;
    const cut = Date.now() / 1_000 - WINDOW_MS / 1_000;
    let drop = 0;
    while (drop < times.length && times[drop]! < cut) drop += 1;
    if (drop > 0) {
      times = times.slice(drop);
      columns = columns.map((c) => c.slice(drop));
    }
    chart.setData([times, ...columns] as uPlot.AlignedData);
    box.setAttribute('data-trend-points', String(points()));
    dirty = false;
  };
  setInterval(() => {
    if (dirty) redraw();
  }, REDRAW_MS);

  const show = async (m: TrendModel) => {
    const mine = (generation += 1);
    model = m;
    times = [];
    columns = m.values.map(() => []);
    chart?.destroy();
    chart = new uPlot(
      {
        width: Math.max(320, box.clientWidth || 900),
        height: 260,
        series: [
          {},
          ...m.values.map((v, i) => ({ label: v.unit ? `${v.name} (${v.unit})` : v.name, stroke: COLORS[i % COLORS.length]!, width: 1.5, spanGaps: true })),
        ],
        axes: [{}, { size: 60 }],
        legend: { live: true },
      },
      [[], ...m.values.map(() => [])] as uPlot.AlignedData,
      box,
    );
    hint.textContent = 'loading the last 15 min…';
    try {
      const { series: known } = await api<{ series: string[] }>('/api/v1/history/series');
      const have = new Set(known);
      const ids = m.values.map((v) => `model/${m.id}/${v.name}`).filter((id) => have.has(id));
      if (ids.length === 0) {
        hint.textContent = 'no history yet for this model: live values only';
        return;
      }
      const h = await api<HistoryAnswer>(`/api/v1/history?series=${ids.map(encodeURIComponent).join(',')}&from=-15m&step=${STEP}&agg=mean`);
      if (mine !== generation) return;
      const byId = new Map(h.series.map((s) => [s.id, s.values]));
      // History first, then what the feed appended meanwhile (later than the last step).
      const last = h.timestamps.at(-1) ?? 0;
      const liveFrom = times.findIndex((t) => t * 1_000 > last);
      const keep = liveFrom < 0 ? 0 : times.length - liveFrom;
      times = [...h.timestamps.map((t) => t / 1_000), ...times.slice(times.length - keep)];
      columns = m.values.map((v, i) => [
        ...(byId.get(`model/${m.id}/${v.name}`) ?? h.timestamps.map(() => null)),
        ...columns[i]!.slice(columns[i]!.length - keep),
      ]);
      hint.textContent = '';
      redraw();
    } catch (e) {
      if (mine === generation) hint.textContent = `history: ${e instanceof Error ? e.message : String(e)} (live values only)`;
    }
  };

  select.addEventListener('change', () => {
    const m = models.find((x) => x.id === select.value);
    if (m) void show(m);
  });
  const section = el('section', { id: 'trend' }, el('h2', {}, 'Trend', el('small', {}, ' last 15 min')), el('p', {}, select, ' ', hint), box);
  // Drawn once the section is in the page (uPlot measures nothing, but the box's width is known then).
  queueMicrotask(() => {
    if (models[0]) void show(models[0]);
  });
  return {
    section,
    onMessage(m) {
      if (!model || m.topic !== `model/${model.id}`) return;
      const values = (m.values ?? {}) as Record<string, number | null>;
      const ts = typeof m.ts === 'number' ? m.ts / 1_000 : Date.now() / 1_000;
      if (times.length > 0 && ts <= times[times.length - 1]!) return;
      times.push(ts);
      model.values.forEach((v, i) => {
        columns[i]!.push(v.name in values ? (values[v.name] ?? null) : null);
      });
      dirty = true;
    },
  };
}
