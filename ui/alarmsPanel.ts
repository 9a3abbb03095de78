/**
 * The dashboard's active alarms, live from the `alarm/all` topic (its snapshot
 * is the active alarms, then every committed change). Operators get
 * Acknowledge and Shelve (1 h) with an optional comment; a viewer gets no
 * button at all. A refusal (409: the alarm's state does not take the action,
 * or another operator was first) is shown in the alarm's row, naming the
 * state, as the API words it: the page never guesses the life cycle.
 */
import { api, el, type FeedMessage } from './common.js';

export interface AlarmView {
  readonly id: string;
  readonly model: string;
  readonly state: string;
  readonly severity: string;
  readonly active: boolean;
  readonly message: string;
  readonly since: number;
  readonly group: string | null;
  readonly chattering: boolean;
}

const SEVERITY_RANK: Readonly<Record<string, number>> = { critical: 0, major: 1, minor: 2, warning: 3 };
const UNACKED = new Set(['unacknowledged', 'returnedUnack']);
const SHELVE_MS = 3_600_000;

/** A row keeps its note across rebuilds: a refusal stays visible when the feed brings the state that caused it. */
interface Row {
  readonly tr: HTMLTableRowElement;
  readonly note: HTMLElement;
  view: AlarmView;
}

function sinceText(ms: number): string {
  const d = new Date(ms);
  return d.toDateString() === new Date().toDateString() ? d.toLocaleTimeString() : d.toLocaleString();
}

export function alarmsSection(operator: boolean): { section: HTMLElement; onMessage(m: FeedMessage): void } {
  const rows = new Map<string, Row>();
  const tbody = el('tbody');
  const empty = el('p', { class: 'hint', 'data-alarms-empty': '' }, 'No active alarms.');
  const comment = el('input', {
    type: 'text',
    name: 'alarm-comment',
    placeholder: 'comment (why; needed to shelve)',
    'aria-label': 'alarm comment',
    maxlength: '500',
  });

  const act = async (row: Row, action: 'ack' | 'shelve'): Promise<void> => {
    const note = row.note;
    note.textContent = '…';
    note.className = 'note';
    try {
      const body = action === 'shelve' ? { comment: comment.value.trim(), durationMs: SHELVE_MS } : { comment: comment.value.trim() || undefined };
      const view = await api<AlarmView>(`/api/v1/alarms/${encodeURIComponent(row.view.id)}/${action}`, { method: 'POST', body });
      note.textContent = '';
      update(view);
    } catch (e) {
      note.textContent = e instanceof Error ? e.message : String(e);
      note.className = 'note error';
    }
  };

  const cells = (row: Row): HTMLElement[] => {
    const v = row.view;
    const actions = el('td', { class: 'actions' });
    if (operator) {
      if (UNACKED.has(v.state)) {
        const ack = el('button', { type: 'button', class: 'primary', 'data-alarm-action': 'ack' }, 'Acknowledge');
        ack.addEventListener('click', () => void act(row, 'ack'));
        actions.append(ack, ' ');
      }
      const shelve = el('button', { type: 'button', 'data-alarm-action': 'shelve' }, 'Shelve 1 h');
      shelve.addEventListener('click', () => void act(row, 'shelve'));
      actions.append(shelve, ' ');
    }
    actions.append(row.note);
    const group = v.group === null ? '—' : v.group === v.id ? 'first out' : `after ${v.group}`;
    return [
      el('td', {}, el('span', { class: `badge sev-${v.severity}` }, v.severity)),
      el(
        'td',
        { 'data-alarm-state': v.state },
        v.state,
        v.chattering ? el('span', { class: 'hint', title: 'raised often in a short time' }, ' chattering') : '',
      ),
      el('td', {}, v.message),
      el('td', { class: 'num' }, sinceText(v.since)),
      el('td', {}, group),
      actions,
    ];
  };

  /** Most severe first, then the oldest: the order an operator works through them. */
  const order = () => {
    const sorted = [...rows.values()].sort(
      (a, b) => (SEVERITY_RANK[a.view.severity] ?? 9) - (SEVERITY_RANK[b.view.severity] ?? 9) || a.view.since - b.view.since,
    );
    tbody.replaceChildren(...sorted.map((r) => r.tr));
    empty.hidden = rows.size > 0;
  };

  const update = (v: AlarmView) => {
    const row = rows.get(v.id);
    if (!v.active) {
      if (row) {
        rows.delete(v.id);
        order();
      }
      return;
    }
    if (row) {
      const changed =
        row.view.state !== v.state ||
        row.view.severity !== v.severity ||
        row.view.message !== v.message ||
        row.view.since !== v.since ||
        row.view.group !== v.group ||
        row.view.chattering !== v.chattering;
      row.view = v;
      if (changed) row.tr.replaceChildren(...cells(row));
    } else {
      const tr = el('tr', { 'data-alarm': v.id });
      const r: Row = { tr, note: el('span', { class: 'note' }, ''), view: v };
      rows.set(v.id, r);
      tr.append(...cells(r));
    }
    order();
  };

  const head = el('thead', {}, el('tr', {}, ...['severity', 'state', 'message', 'since', 'first-out group', ''].map((h) => el('th', {}, h))));
  const section = el(
    'section',
    { id: 'alarms' },
    el('h2', {}, 'Active alarms'),
    ...(operator ? [el('p', { class: 'alarm-comment' }, comment)] : []),
    el('table', {}, head, tbody),
    empty,
  );
  return {
    section,
    onMessage(m) {
      if (m.snapshot === true && Array.isArray(m.alarms)) {
        // A snapshot (on every (re)connect) is the whole truth: alarms not in it are no longer active.
        const ids = new Set((m.alarms as AlarmView[]).map((a) => a.id));
        for (const id of [...rows.keys()]) if (!ids.has(id)) rows.delete(id);
        for (const a of m.alarms as AlarmView[]) update(a);
        order();
      } else if (m.alarm && typeof m.alarm === 'object') {
        update(m.alarm as AlarmView);
      }
    },
  };
}
