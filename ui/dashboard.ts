/**
 * The dashboard (/ui/): active alarms (ui/alarmsPanel.ts), models with their
 * values and units, a trend of the selected model (ui/trendChart.ts), channels
 * with their status and quality counts, and (for operators) a control form
 * that sends a setpoint and follows its command to its end. Built once from
 * REST; the feed then changes only the text of the cells it touches, so a
 * site of thousands of points costs no page rebuild per message.
 */
import { alarmsSection } from './alarmsPanel.js';
import { api, ApiFailure, el, feed, fmt, header, may, signIn, stateText, type FeedMessage, type Me } from './common.js';
import { trendSection } from './trendChart.js';

interface ActorInfo {
  readonly status: string | null;
  readonly state: unknown;
  readonly restarts: number;
}
interface ChannelRow {
  readonly id: string;
  readonly name: string;
  readonly protocol: string;
  readonly points: number;
  readonly actor: ActorInfo;
}
interface ModelRow {
  readonly id: string;
  readonly name: string;
  readonly controls: readonly string[];
}
interface ModelDetail {
  readonly id: string;
  readonly name: string;
  readonly values: ReadonlyArray<{ name: string; unit: string | null; calculated: boolean; value: number | null; quality: string | null }>;
  readonly controls: ReadonlyArray<{ name: string; min: number | null; max: number | null }>;
}
interface CommandInfo {
  readonly id: string;
  readonly status: 'pending' | 'confirmed' | 'failed' | 'timeout';
  readonly message: string;
  readonly readback: number | null;
}

function statusBadge(status: string | null): HTMLElement {
  return el('span', { class: `badge s-${status ?? 'unknown'}`, 'data-status': status ?? 'unknown' }, status ?? 'unknown');
}

function channelsSection(channels: readonly ChannelRow[]): { section: HTMLElement; onMessage(m: FeedMessage): void } {
  const rows = new Map<string, { badge: HTMLElement; state: HTMLElement; quality: HTMLElement; qualities: Map<string, string> }>();
  const tbody = el('tbody');
  for (const c of channels) {
    const badge = statusBadge(c.actor.status);
    const status = el('td', {}, badge);
    const state = el('td', {}, stateText(c.actor.state));
    const quality = el('td', { class: 'quality' }, '—');
    rows.set(c.id, { badge, state, quality, qualities: new Map() });
    tbody.append(
      el(
        'tr',
        { 'data-channel': c.id },
        el('td', {}, c.id),
        el('td', {}, c.name),
        el('td', {}, c.protocol),
        status,
        state,
        el('td', { class: 'num' }, String(c.points)),
        quality,
      ),
    );
  }
  const table = el(
    'table',
    {},
    el('thead', {}, el('tr', {}, ...['id', 'name', 'protocol', 'status', 'state', 'points', 'quality'].map((h) => el('th', {}, h)))),
    tbody,
  );
  return {
    section: el('section', { id: 'channels' }, el('h2', {}, 'Channels'), table),
    onMessage(m) {
      if (m.topic.startsWith('actor/channel/')) {
        const r = rows.get(m.topic.slice('actor/channel/'.length));
        const a = m.actor as ActorInfo | undefined;
        if (!r || !a) return;
        // In place, and only what changed: a channel reports its state about once a second, its status seldom.
        const status = a.status ?? 'unknown';
        if (r.badge.getAttribute('data-status') !== status) {
          r.badge.textContent = status;
          r.badge.className = `badge s-${status}`;
          r.badge.setAttribute('data-status', status);
        }
        const state = stateText(a.state);
        if (r.state.textContent !== state) r.state.textContent = state;
        return;
      }
      const r = rows.get(m.topic.slice('channel/'.length));
      if (!r) return;
      const values = (m.values ?? {}) as Record<string, number | null>;
      const quality = (m.quality ?? {}) as Record<string, string | null>;
      for (const k of Object.keys(values)) r.qualities.set(k, k in quality ? (quality[k] ?? 'none') : 'good');
      const counts = new Map<string, number>();
      for (const q of r.qualities.values()) counts.set(q, (counts.get(q) ?? 0) + 1);
      const text = [...counts]
        .sort()
        .map(([q, n]) => `${n} ${q}`)
        .join(' · ');
      if (r.quality.textContent !== text) r.quality.textContent = text;
    },
  };
}

function modelsSection(models: readonly ModelDetail[]): { section: HTMLElement; onMessage(m: FeedMessage): void } {
  const cells = new Map<string, HTMLElement>();
  const cards = models.map((m) => {
    const rows = m.values.map((v) => {
      const cell = el('td', { class: `num q-${v.quality ?? 'none'}`, 'data-value': `${m.id}.${v.name}` }, fmt(v.value));
      cells.set(`${m.id}\u0000${v.name}`, cell);
      return el(
        'tr',
        {},
        el('th', { scope: 'row' }, v.name, v.calculated ? el('span', { class: 'calc', title: 'calculated' }, ' ƒ') : ''),
        cell,
        el('td', { class: 'unit' }, v.unit ?? ''),
      );
    });
    return el('article', { class: 'card', 'data-model': m.id }, el('h3', {}, m.name, el('small', {}, ` ${m.id}`)), el('table', {}, el('tbody', {}, ...rows)));
  });
  return {
    section: el('section', { id: 'models' }, el('h2', {}, 'Models'), el('div', { class: 'cards' }, ...cards)),
    onMessage(m) {
      const id = m.topic.slice('model/'.length);
      const values = (m.values ?? {}) as Record<string, number | null>;
      const quality = (m.quality ?? {}) as Record<string, string | null>;
      for (const name of Object.keys(values)) {
        const cell = cells.get(`${id}\u0000${name}`);
        if (!cell) continue;
        const text = fmt(values[name]);
        if (cell.textContent !== text) cell.textContent = text;
        const cls = `num q-${name in quality ? (quality[name] ?? 'none') : 'good'}`;
        if (cell.className !== cls) cell.className = cls;
      }
    },
  };
}

/** Sends a setpoint and follows its command: pending → confirmed, failed or timeout; rejected when the API refuses it. */
function controlSection(models: readonly ModelDetail[]): HTMLElement {
  const targets = models.flatMap((m) => m.controls.map((c) => ({ model: m, control: c })));
  const select = el(
    'select',
    { name: 'target', 'aria-label': 'control' },
    ...targets.map((t, i) =>
      el(
        'option',
        { value: String(i) },
        `${t.model.name} · ${t.control.name}${t.control.min !== null || t.control.max !== null ? ` (${t.control.min ?? '−∞'} … ${t.control.max ?? '∞'})` : ''}`,
      ),
    ),
  );
  const value = el('input', { type: 'number', name: 'value', step: 'any', required: '', 'aria-label': 'value' });
  const send = el('button', { type: 'submit', class: 'primary' }, 'Send');
  const results = el('ol', { class: 'results' });
  const form = el('form', { class: 'control' }, select, value, send);
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const t = targets[Number(select.value)];
    if (!t) return;
    const v = Number(value.value);
    const status = el('span', { class: 'badge s-pending', 'data-command-status': 'pending' }, 'pending');
    const detail = el('span', { class: 'detail' }, '');
    results.prepend(el('li', {}, `${t.model.id}.${t.control.name} = ${v} `, status, ' ', detail));
    const show = (s: string, text: string) => {
      status.textContent = s;
      status.className = `badge s-${s}`;
      status.setAttribute('data-command-status', s);
      detail.textContent = text;
    };
    void (async () => {
      try {
        const { commandId } = await api<{ commandId: string }>(
          `/api/v1/models/${encodeURIComponent(t.model.id)}/controls/${encodeURIComponent(t.control.name)}`,
          { method: 'POST', body: { value: v } },
        );
        detail.textContent = commandId;
        // The runtime ends every command (it times out at the latest); the loop is bounded anyway.
        for (let i = 0; i < 600; i += 1) {
          const c = await api<CommandInfo>(`/api/v1/commands/${encodeURIComponent(commandId)}`);
          if (c.status !== 'pending') {
            show(c.status, `${commandId}${c.readback !== null ? ` · read back ${fmt(c.readback)}` : ''}${c.message ? ` · ${c.message}` : ''}`);
            return;
          }
          await new Promise((r) => setTimeout(r, 200));
        }
      } catch (e) {
        // Refused by the API (out of limits, unknown control): nothing was written, as the CLI and the cloud say.
        show(e instanceof ApiFailure && e.status < 500 ? 'rejected' : 'failed', e instanceof Error ? e.message : String(e));
      }
    })();
  });
  return el('section', { id: 'control' }, el('h2', {}, 'Control'), form, results);
}

async function main(): Promise<void> {
  const me: Me = await signIn();
  header(me, 'dashboard');
  const [{ channels }, { models: list }] = await Promise.all([
    api<{ channels: ChannelRow[] }>('/api/v1/channels'),
    api<{ models: ModelRow[] }>('/api/v1/models'),
  ]);
  const models = await Promise.all(list.map((m) => api<ModelDetail>(`/api/v1/models/${encodeURIComponent(m.id)}`)));
  const ch = channelsSection(channels);
  const mo = modelsSection(models);
  const al = alarmsSection(may(me, 'operator'));
  const tr = trendSection(models);
  const live = el('span', { class: 'live', 'data-live': 'false' }, 'connecting…');
  const main = document.querySelector('main')!;
  main.replaceChildren(el('p', { class: 'status' }, live), al.section, mo.section, tr.section, ch.section);
  // What a role may not do is not offered: a viewer gets no control form at all.
  if (may(me, 'operator') && models.some((m) => m.controls.length > 0)) main.append(controlSection(models));
  feed(
    ['model/*', 'channel/*', 'actor/channel/*', 'alarm/all'],
    (m) => {
      if (m.topic.startsWith('model/')) {
        mo.onMessage(m);
        tr.onMessage(m);
      } else if (m.topic === 'alarm/all') al.onMessage(m);
      else ch.onMessage(m);
    },
    (up) => {
      live.textContent = up ? 'live' : 'reconnecting…';
      live.setAttribute('data-live', String(up));
    },
  );
}

main().catch((e: unknown) => {
  document.querySelector('main')!.replaceChildren(el('p', { class: 'error' }, e instanceof Error ? e.message : String(e)));
});
