/**
 * What both pages share: sign-in with a token (kept in sessionStorage, so it
 * lasts the browser session and no longer), the caller's role (GET
 * /api/v1/me: the pages offer only what it may do), REST calls and the
 * WebSocket feed, which reconnects and subscribes again.
 */
export type Role = 'viewer' | 'operator' | 'admin';
export interface Me {
  readonly name: string;
  readonly role: Role;
}

const KEY = 'voltage.token';
const RANK: Readonly<Record<Role, number>> = { viewer: 0, operator: 1, admin: 2 };

export function may(me: Me, role: Role): boolean {
  return RANK[me.role] >= RANK[role];
}

export class ApiFailure extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export async function api<T>(path: string, init: { method?: string; body?: unknown } = {}): Promise<T> {
  const token = sessionStorage.getItem(KEY) ?? '';
  const r = await fetch(path, {
    method: init.method ?? 'GET',
    headers: { authorization: `Bearer ${token}`, ...(init.body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
  });
  const body = (await r.json().catch(() => ({}))) as { error?: { code: string; message: string } };
  if (!r.ok) throw new ApiFailure(r.status, body.error?.code ?? 'HTTP', body.error?.message ?? `HTTP ${r.status}`);
  return body as T;
}

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: Array<Node | string>
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  e.append(...children);
  return e;
}

/** The caller, after a sign-in form when there is no valid token yet. */
export async function signIn(): Promise<Me> {
  let refused = ''; // why the last token did not sign in: shown on the form, which otherwise came back without a word
  for (;;) {
    if (sessionStorage.getItem(KEY)) {
      try {
        return await api<Me>('/api/v1/me');
      } catch (e) {
        if (!(e instanceof ApiFailure) || e.status !== 401) throw e;
        sessionStorage.removeItem(KEY);
        refused = `Not signed in: ${e.message}.`;
      }
    }
    await new Promise<void>((resolve) => {
      const input = el('input', { type: 'password', name: 'token', placeholder: 'token', autocomplete: 'current-password', 'aria-label': 'token' });
      const form = el(
        'form',
        { class: 'signin' },
        el('h2', {}, 'Sign in'),
        el('p', {}, 'The token printed by voltage demo, or one from the site configuration.'),
        ...(refused ? [el('p', { class: 'error', role: 'alert' }, refused)] : []),
        input,
        el('button', { type: 'submit' }, 'Sign in'),
      );
      form.addEventListener('submit', (ev) => {
        ev.preventDefault();
        sessionStorage.setItem(KEY, input.value.trim());
        form.remove();
        resolve();
      });
      document.querySelector('main')!.replaceChildren(form);
      input.focus();
    });
  }
}

/** The header: the pages, who is signed in, and sign out. */
export function header(me: Me, page: 'dashboard' | 'actors'): void {
  const link = (href: string, text: string, on: boolean) => el('a', { href, ...(on ? { 'aria-current': 'page' } : {}) }, text);
  const out = el('button', { type: 'button', class: 'link' }, 'Sign out');
  out.addEventListener('click', () => {
    sessionStorage.removeItem(KEY);
    location.reload();
  });
  document
    .querySelector('header')!
    .replaceChildren(
      el('strong', {}, 'VoltageEMS'),
      el('nav', {}, link('/ui/', 'Dashboard', page === 'dashboard'), link('/ui/actors', 'Actors', page === 'actors')),
      el('span', { class: 'who' }, `${me.name} · ${me.role}`),
      out,
    );
}

export interface FeedMessage {
  readonly topic: string;
  readonly [k: string]: unknown;
}

/** The WebSocket feed on `topics`; reconnects with a growing pause (bounded at 10 s). */
export function feed(topics: readonly string[], onMessage: (m: FeedMessage) => void, onStatus: (up: boolean) => void = () => undefined): void {
  let pause = 500;
  const open = () => {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(`${proto}//${location.host}/ws?token=${encodeURIComponent(sessionStorage.getItem(KEY) ?? '')}`);
    ws.onopen = () => {
      pause = 500;
      onStatus(true);
      ws.send(JSON.stringify({ op: 'subscribe', topics }));
    };
    ws.onmessage = (ev) => {
      const m = JSON.parse(String(ev.data)) as FeedMessage;
      if (typeof m.topic === 'string') onMessage(m);
    };
    ws.onclose = () => {
      onStatus(false);
      setTimeout(open, pause);
      pause = Math.min(10_000, pause * 2);
    };
  };
  open();
}

export function fmt(v: number | null | undefined): string {
  if (v === null || v === undefined) return '—';
  return Math.abs(v) >= 1000 || Number.isInteger(v) ? String(Math.round(v * 100) / 100) : v.toFixed(Math.abs(v) < 10 ? 3 : 2);
}

/** A machine's state value as text: 'polling', 'ready.idle'. */
export function stateText(state: unknown): string {
  if (state === null || state === undefined || state === '') return '—';
  if (typeof state === 'string') return state;
  return Object.entries(state as Record<string, unknown>)
    .map(([k, v]) => `${k}.${stateText(v)}`)
    .join(', ');
}
