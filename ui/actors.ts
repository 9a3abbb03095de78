/**
 * The state-machine visualizer (/ui/actors): the supervision tree, live
 * (status, machine state, restarts, a countdown while an actor waits out its
 * backoff), and the selected actor's machine drawn as a statechart with its
 * current state highlighted, plus its last transitions. The layout comes
 * laid out from the API (elkjs runs in the gateway), so this page draws SVG.
 */
import { api, ApiFailure, el, feed, header, signIn, stateText, type FeedMessage } from './common.js';

interface Actor {
  readonly id: string;
  readonly kind: string | null;
  readonly parent: string | null;
  readonly status: string | null;
  readonly state: unknown;
  readonly restarts: number;
  readonly nextBackoffMs: number;
  readonly backoffUntil: number;
  readonly lastError: string | null;
  readonly order: number;
  /** The ids of the states it is in, outermost first ('' the root). */
  readonly active: readonly string[];
}
interface Box {
  readonly x: number;
  readonly y: number;
  readonly width: number;
  readonly height: number;
}
interface Graph {
  readonly id: string;
  readonly width: number;
  readonly height: number;
  readonly states: ReadonlyArray<{ id: string; key: string; parent: string | null; type: string; initial: boolean; invoke: readonly string[] }>;
  readonly transitions: ReadonlyArray<{ source: string; target: string | null; kind: string; event: string; guard: string | null }>;
  readonly boxes: Readonly<Record<string, Box>>;
  readonly edges: ReadonlyArray<{ points: ReadonlyArray<{ x: number; y: number }>; label: { x: number; y: number } | null }>;
}
interface Transition {
  readonly ts: number;
  readonly event: string;
  /** State values ("polling", {"ready": "idle"}); null when not known. */
  readonly from: unknown;
  readonly to: unknown;
  readonly error?: string;
}

const SVG = 'http://www.w3.org/2000/svg';
function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number>, ...children: Array<Node | string>): SVGElementTagNameMap[K] {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  e.append(...children);
  return e;
}

function drawMachine(g: Graph): { root: SVGSVGElement; highlight(active: readonly string[], running: boolean): void } {
  const root = svg('svg', {
    viewBox: `0 0 ${g.width} ${g.height}`,
    width: g.width,
    height: g.height,
    class: 'machine',
    role: 'img',
    'aria-label': `statechart of ${g.id}`,
  });
  root.append(
    svg(
      'defs',
      {},
      svg(
        'marker',
        { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' },
        svg('path', { d: 'M0,0 L10,5 L0,10 z' }),
      ),
    ),
  );
  const nodes = new Map<string, SVGGElement>();
  for (const s of g.states) {
    const b = g.boxes[s.id];
    if (!b) continue;
    const stays = g.transitions.filter((t) => t.source === s.id && t.target === null);
    const lines = [...s.invoke.map((i) => `invoke ${i}`), ...stays.map((t) => `${t.event}${t.guard ? ` [${t.guard}]` : ''}`)];
    const group = svg(
      'g',
      { class: `state t-${s.type}`, 'data-state': s.id },
      svg('rect', { x: b.x, y: b.y, width: b.width, height: b.height, rx: 8 }),
      svg('text', { x: b.x + 10, y: b.y + 18, class: 'name' }, s.key),
      ...lines.map((l, i) => svg('text', { x: b.x + 10, y: b.y + 34 + i * 16, class: 'line' }, l)),
    );
    if (s.initial) group.append(svg('circle', { cx: b.x - 6, cy: b.y + 14, r: 4, class: 'initial' }));
    nodes.set(s.id, group);
    root.append(group);
  }
  g.transitions
    .filter((t) => t.target !== null)
    .forEach((t, i) => {
      const e = g.edges[i];
      if (!e || e.points.length < 2) return;
      root.append(
        svg('path', { d: e.points.map((p, j) => `${j ? 'L' : 'M'}${p.x},${p.y}`).join(' '), class: `edge k-${t.kind}`, 'marker-end': 'url(#arrow)' }),
      );
      if (e.label) root.append(svg('text', { x: e.label.x, y: e.label.y + 12, class: `label k-${t.kind}` }, `${t.event}${t.guard ? ` [${t.guard}]` : ''}`));
    });
  return {
    root,
    highlight(active, running) {
      const on = new Set(running ? active : []);
      for (const [id, n] of nodes) n.classList.toggle('active', id !== '' && on.has(id));
    },
  };
}

/** The journal's raw event types, as the statechart labels them. */
function eventText(type: string): string {
  if (type === 'xstate.init') return 'start';
  const m = /^xstate\.(done|error)\.actor\./.exec(type);
  if (m) return `${m[1]}: invoked actor`;
  const after = /^xstate\.after\.([^.]+)/.exec(type);
  return after ? `after ${after[1]}` : type;
}

/** While an actor waits out its backoff: why it failed, and when it restarts. */
function countdown(a: Actor, now: number): string {
  if (a.status === 'failed') return `failed: ${a.lastError ?? ''}`;
  if (a.status !== 'backoff') return '';
  const why = a.lastError ? `failed: ${a.lastError} · ` : '';
  return a.backoffUntil <= now ? `${why}restarting…` : `${why}restart in ${((a.backoffUntil - now) / 1000).toFixed(1)} s`;
}

async function main(): Promise<void> {
  const me = await signIn();
  header(me, 'actors');
  const { actors: list } = await api<{ actors: Actor[] }>('/api/v1/actors');
  const actors = new Map(list.map((a) => [a.id, a]));
  const rows = new Map<string, { status: HTMLElement; state: HTMLElement; restarts: HTMLElement; timer: HTMLElement }>();
  const tree = el('ul', { class: 'tree' });
  const detail = el('section', { id: 'detail' }, el('p', { class: 'hint' }, 'Select an actor to see its machine.'));
  let selected: { id: string; chart: ReturnType<typeof drawMachine> | undefined; journal: HTMLElement } | undefined;

  const children = (parent: string | null) =>
    [...actors.values()].filter((a) => a.parent === parent).sort((x, y) => x.order - y.order || x.id.localeCompare(y.id));
  const render = (parent: string | null, into: HTMLElement) => {
    for (const a of children(parent)) {
      const status = el('span', { class: `badge s-${a.status ?? 'unknown'}`, 'data-status': a.status ?? 'unknown' }, a.status ?? 'unknown');
      const state = el('span', { class: 'state' }, stateText(a.state));
      const restarts = el('span', { class: 'restarts', title: 'restarts' }, `↻ ${a.restarts}`);
      const timer = el('span', { class: 'countdown', 'data-countdown': '' }, countdown(a, Date.now()));
      rows.set(a.id, { status, state, restarts, timer });
      const name = el('button', { type: 'button', class: 'link actor', 'data-actor': a.id }, a.id);
      name.addEventListener('click', () => {
        location.hash = a.id;
      });
      const li = el(
        'li',
        { 'data-actor-row': a.id },
        el('div', { class: 'row' }, name, el('span', { class: 'kind' }, a.kind ?? ''), status, state, restarts, timer),
      );
      const sub = el('ul');
      render(a.id, sub);
      if (sub.childElementCount) li.append(sub);
      into.append(li);
    }
  };
  render(null, tree);

  const refreshJournal = async (id: string, into: HTMLElement) => {
    const { transitions } = await api<{ transitions: Transition[] }>(`/api/v1/actors/${encodeURIComponent(id)}/transitions?count=30`);
    into.replaceChildren(
      el('thead', {}, el('tr', {}, ...['time', 'event', 'from', 'to', 'error'].map((h) => el('th', {}, h)))),
      el(
        'tbody',
        {},
        ...transitions.map((t) =>
          el(
            'tr',
            {},
            el('td', {}, new Date(t.ts).toLocaleTimeString()),
            el('td', { title: t.event }, eventText(t.event)),
            el('td', {}, t.from === null ? '' : stateText(t.from)),
            el('td', {}, t.to === null ? '' : stateText(t.to)),
            el('td', { class: 'error' }, t.error ?? ''),
          ),
        ),
      ),
    );
  };

  const select = async (id: string) => {
    const a = actors.get(id);
    if (!a) return;
    for (const b of tree.querySelectorAll('[aria-current]')) b.removeAttribute('aria-current');
    tree.querySelector(`[data-actor="${CSS.escape(id)}"]`)?.setAttribute('aria-current', 'true');
    const journal = el('table', { class: 'journal' });
    selected = { id, chart: undefined, journal };
    const title = el('h2', {}, id);
    if (!a.kind || a.kind === 'supervisor') {
      detail.replaceChildren(title, el('p', {}, 'A supervisor: it runs no machine of its own.'));
      return;
    }
    let graph: Graph;
    try {
      ({ graph } = await api<{ graph: Graph }>(`/api/v1/actors/${encodeURIComponent(id)}/machine`));
    } catch (e) {
      if (selected?.id !== id) return;
      // Said, not swallowed; a failure that may pass (a layout the build did not make loads elkjs in the gateway
      // and can outlast the request's deadline, or Redis is away) is asked again while the actor stays selected.
      const again = !(e instanceof ApiFailure) || e.status >= 500;
      const why = e instanceof Error ? e.message : String(e);
      detail.replaceChildren(title, el('p', { class: 'error' }, `Its machine could not be loaded: ${why}${again ? ' (trying again)' : ''}`));
      if (again) setTimeout(() => selected?.id === id && void select(id).catch(() => undefined), 1_000);
      return;
    }
    if (selected?.id !== id) return;
    const chart = drawMachine(graph);
    chart.highlight(actors.get(id)?.active ?? [], actors.get(id)?.status === 'running');
    selected.chart = chart;
    detail.replaceChildren(title, el('div', { class: 'chart' }, chart.root), el('h3', {}, 'Last transitions'), journal);
    await refreshJournal(id, journal);
  };

  const onMessage = (m: FeedMessage) => {
    const a = m.actor as Actor | undefined;
    if (!a) return;
    const known = actors.has(a.id);
    actors.set(a.id, a);
    const r = rows.get(a.id);
    if (!known || !r) {
      tree.replaceChildren();
      rows.clear();
      render(null, tree);
      return;
    }
    r.status.textContent = a.status ?? 'unknown';
    r.status.className = `badge s-${a.status ?? 'unknown'}`;
    r.status.setAttribute('data-status', a.status ?? 'unknown');
    r.state.textContent = stateText(a.state);
    r.restarts.textContent = `↻ ${a.restarts}`;
    r.timer.textContent = countdown(a, Date.now());
    if (selected?.id === a.id) {
      selected.chart?.highlight(a.active, a.status === 'running');
      void refreshJournal(a.id, selected.journal).catch(() => undefined);
    }
  };
  const main = document.querySelector('main')!;
  main.replaceChildren(el('div', { class: 'split' }, el('section', { id: 'tree' }, el('h2', {}, 'Supervision tree'), tree), detail));
  // Countdowns tick between messages.
  setInterval(() => {
    const now = Date.now();
    for (const [id, r] of rows) {
      const a = actors.get(id);
      if (a?.status === 'backoff') r.timer.textContent = countdown(a, now);
    }
  }, 100);
  feed(['actor/*'], onMessage);
  const fromHash = () => {
    const id = decodeURIComponent(location.hash.slice(1));
    if (id) void select(id).catch(() => undefined);
  };
  window.addEventListener('hashchange', fromHash);
  fromHash();
}

main().catch((e: unknown) => {
  document.querySelector('main')!.replaceChildren(el('p', { class: 'error' }, e instanceof Error ? e.message : String(e)));
});
