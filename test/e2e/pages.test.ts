/**
 * The pages in a real Chromium (Debian's, driven by playwright-core) against
 * `voltage demo` on private servers: its own redis-server, simulated devices,
 * and the gateway on a free port. The demo's site is used as shipped except
 * that its crashing channel (1004) crashes after 5 polls instead of 20, so that
 * a failure comes within seconds. Skipped, saying so, where /usr/bin/chromium
 * is not installed (`.ci/setup` installs it).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { freePort } from '../../runtime/redisServer.js';
import { eventually, sleep } from '../helpers/servers.js';

const CHROMIUM = '/usr/bin/chromium';
const BIN = 'runtime/bin/voltage.js';
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) process.stderr.write(`test/e2e/pages.test.ts: SKIPPED — no ${CHROMIUM} (apt-get install chromium, or run .ci/setup)\n`);

type Role = 'viewer' | 'operator' | 'admin';

let demo: ChildProcess;
let exited: Promise<number | null>;
let browser: Browser;
let base = '';
let redis: Redis;
const tokens = {} as Record<Role, string>;

beforeAll(async () => {
  if (!haveChromium) return;
  // The pages (dist/ui) and the runtime's bundle, as `npm ci` builds them.
  execFileSync(process.execPath, ['runtime/bin/build.js'], { stdio: 'inherit' });
  const dir = mkdtempSync(join(tmpdir(), 'voltage-e2e-'));
  cpSync('config', dir, { recursive: true });
  const port = await freePort();
  writeFileSync(join(dir, 'runtime.yaml'), readFileSync(join(dir, 'runtime.yaml'), 'utf8').replace(/port: 8080/, `port: ${port}`));
  writeFileSync(join(dir, 'channels.yaml'), readFileSync(join(dir, 'channels.yaml'), 'utf8').replace('crashAfterPolls: 20', 'crashAfterPolls: 5'));
  const env: Record<string, string> = { LOG_FORMAT: 'json' };
  // No REDIS_URL: the demo starts its own redis-server.
  for (const [k, v] of Object.entries(process.env)) if (k !== 'REDIS_URL' && v !== undefined) env[k] ??= v;
  demo = spawn(process.execPath, [BIN, 'demo', '--config', dir], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  demo.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  demo.stderr!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  exited = new Promise((r) => demo.on('exit', (code) => r(code)));
  await eventually(() => out.includes('Ctrl-C stops it.'), 30_000);
  base = /api\s+(http:\/\/\S+?)\/health/.exec(out)![1]!;
  for (const role of ['viewer', 'operator', 'admin'] as const) tokens[role] = new RegExp(`token\\s+${role}\\s+(\\S+)`).exec(out)![1]!;
  redis = new Redis(/redis\s+(redis:\/\/\S+)/.exec(out)![1]!, { maxRetriesPerRequest: 1 });
  redis.on('error', () => undefined);
  const { chromium } = await import('playwright-core');
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
}, 90_000);

afterAll(async () => {
  await browser?.close();
  redis?.disconnect();
  if (demo && demo.exitCode === null) {
    demo.kill('SIGINT');
    await exited;
  }
}, 30_000);

/** A fresh browser session (its own sessionStorage), signed in with a role's token; problems are collected. */
async function open(path: string, role: Role, before?: (page: Page) => Promise<void>): Promise<{ page: Page; problems: string[] }> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  await before?.(page);
  const problems: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText ?? ''}`));
  page.on('response', (r) => {
    if (r.status() >= 400) problems.push(`HTTP ${r.status()}: ${r.url()}`);
  });
  await page.goto(base + path);
  await page.fill('input[name=token]', tokens[role]);
  await page.click('form.signin button[type=submit]');
  return { page, problems };
}

async function api(path: string, role: Role, body?: unknown): Promise<{ status: number; body: any }> {
  const r = await fetch(base + path, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { authorization: `Bearer ${tokens[role]}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: r.status, body: await r.json() };
}

describe.skipIf(!haveChromium)('pages in Chromium', () => {
  it('each page loads with no console error and no failed request, for each role', async () => {
    for (const role of ['viewer', 'operator'] as const) {
      for (const [path, ready] of [
        ['/ui/', '[data-value="grid.P"]'],
        ['/ui/actors#model/site', 'svg.machine'],
      ] as const) {
        const { page, problems } = await open(path, role);
        await page.waitForSelector(ready);
        await page.waitForSelector('.live[data-live="true"], #tree');
        await sleep(1_000); // the feed runs a while
        expect(problems, `${path} as ${role}`).toEqual([]);
        await page.context().close();
      }
    }
  });

  it('a token the gateway does not know: the sign-in form comes back saying so', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${base}/ui/`);
    await page.fill('input[name=token]', 'not-a-token');
    await page.click('form.signin button[type=submit]');
    const said = await page.waitForSelector('form.signin .error', { timeout: 5_000 });
    expect(await said.textContent()).toBe('Not signed in: unknown token.');
    await context.close();
  });

  it('a dashboard value changes within 1 s of the device changing', async () => {
    const { page } = await open('/ui/', 'viewer');
    await page.waitForSelector('.live[data-live="true"]');
    const generated: Array<{ value: number; ts: number }> = [];
    const sub = redis.duplicate();
    sub.on('error', () => undefined);
    sub.on('message', (_ch, msg: string) => {
      const m = JSON.parse(msg) as { ts?: number; v?: Record<string, number> };
      if (m.v?.P !== undefined && m.ts !== undefined) generated.push({ value: m.v.P, ts: m.ts });
    });
    // Subscribed before the page starts noting: a change it notes is one whose notification was heard.
    await sub.subscribe('modsrv:grid:update');
    // The page notes when the grid meter's power cell changes; Redis said when each value was generated.
    await page.evaluate(() => {
      const cell = document.querySelector('[data-value="grid.P"]')!;
      const seen: Array<{ text: string; at: number }> = [];
      (window as unknown as { seen: typeof seen }).seen = seen;
      new MutationObserver(() => seen.push({ text: cell.textContent ?? '', at: Date.now() })).observe(cell, {
        childList: true,
        characterData: true,
        subtree: true,
      });
    });
    await sleep(4_000); // the grid meter polls every 500 ms and its power walks randomly
    const seen = await page.evaluate(() => (window as unknown as { seen: Array<{ text: string; at: number }> }).seen);
    // The notification of the last change the page noted reached this subscriber too (it has no gateway between).
    await sleep(200);
    sub.disconnect();
    const latencies = seen.map((s) => {
      const g = [...generated].reverse().find((x) => Math.abs(x.value - Number(s.text)) < 0.01 && x.ts <= s.at);
      return g ? s.at - g.ts : Number.POSITIVE_INFINITY;
    });
    expect(seen.length).toBeGreaterThanOrEqual(4);
    expect(Math.max(...latencies)).toBeLessThan(1_000);
    await page.context().close();
  });

  it('the crashing channel: failing → backoff with a countdown → running, its machine drawn with the current state highlighted', async () => {
    const { page } = await open('/ui/actors#channel/1004', 'viewer');
    await page.waitForSelector('svg.machine g.state');
    await page.evaluate(() => {
      const row = document.querySelector('[data-actor-row="channel/1004"] > .row')!;
      const log: string[] = [];
      (window as unknown as { log: string[] }).log = log;
      const note = () => {
        const s = `${row.querySelector('[data-status]')!.getAttribute('data-status')}|${row.querySelector('.countdown')!.textContent}`;
        if (log.at(-1) !== s) log.push(s);
      };
      note();
      new MutationObserver(note).observe(row, { childList: true, characterData: true, subtree: true, attributes: true });
    });
    const log = async () => page.evaluate(() => (window as unknown as { log: string[] }).log);
    // A failure, a backoff with a countdown, and running again, in that order.
    const cycle = await eventually(
      async () => {
        const l = await log();
        const b = l.findIndex((s) => /^backoff\|failed: .*crashed.* · restart in \d+\.\d s$/.test(s));
        const r = b >= 0 ? l.findIndex((s, i) => i > b && s.startsWith('running|')) : -1;
        return r > b && b >= 0 ? l : undefined;
      },
      20_000,
      100,
    );
    expect(cycle.some((s) => s.startsWith('running|'))).toBe(true);
    // Running again: the chart highlights the state the API reports (connecting → polling).
    await eventually(
      async () => {
        const a = (await api('/api/v1/actors/channel/1004', 'viewer')).body;
        if (a.status !== 'running') return false;
        const lit = await page.$$eval('svg.machine g.state.active', (gs) => gs.map((g) => g.getAttribute('data-state')));
        return lit.length === 1 && lit[0] === a.state;
      },
      5_000,
      100,
    );
    // The chart is the machine's: every state, transitions with events and guards.
    const states = await page.$$eval('svg.machine g.state', (gs) => gs.map((g) => g.getAttribute('data-state')));
    expect(states.sort()).toEqual(['', 'connecting', 'polling', 'reconnecting']);
    const labels = await page.$$eval('svg.machine text.label', (ts) => ts.map((t) => t.textContent));
    expect(labels).toContain('error: polls [isTransient]');
    // The journal shows the failure with its error.
    await eventually(
      async () => (await page.$$eval('table.journal td.error', (tds) => tds.map((td) => td.textContent ?? ''))).some((t) => /crashed after 5 polls/.test(t)),
      5_000,
      100,
    );
    await page.screenshot({ path: 'docs/screenshots/visualizer.png' });
    await page.context().close();
  }, 45_000);

  it('a state change reaches the visualizer within 1 s of its time in the journal', async () => {
    const { page } = await open('/ui/actors#channel/1004', 'viewer');
    await page.waitForSelector('svg.machine g.state');
    // What the page shows of the crashing channel, noted at every DOM change: its row (status, state) and the state lit in its chart.
    const from = await page.evaluate(() => {
      const shown: Array<{ at: number; status: string; state: string; lit: string }> = [];
      (window as unknown as { shown: typeof shown }).shown = shown;
      const note = () => {
        const row = document.querySelector('[data-actor-row="channel/1004"] > .row');
        const s = {
          at: Date.now(),
          status: row?.querySelector('[data-status]')?.getAttribute('data-status') ?? '',
          state: row?.querySelector('.state')?.textContent ?? '',
          lit: [...document.querySelectorAll('svg.machine g.state.active')].map((g) => g.getAttribute('data-state')).join(','),
        };
        const last = shown.at(-1);
        if (!last || last.status !== s.status || last.state !== s.state || last.lit !== s.lit) shown.push(s);
      };
      note();
      new MutationObserver(note).observe(document.querySelector('main')!, { childList: true, characterData: true, subtree: true, attributes: true });
      return shown[0]!.at;
    });
    interface Entry {
      ts: number;
      event: string;
      to: unknown;
    }
    // The journal (the runtime's own clock, the same host's) until it has a failure and then polling again for a while.
    const entries = await eventually(
      async () => {
        const all = ((await api('/api/v1/actors/channel/1004/transitions?count=50', 'viewer')).body.transitions as Entry[])
          .filter((t) => t.ts >= from)
          .reverse();
        const failed = all.findIndex((t) => t.event === 'failed');
        const polling = all.findIndex((t, i) => i > failed && t.to === 'polling');
        return failed >= 0 && polling > failed && Date.now() - all[polling]!.ts > 1_500 ? all : undefined;
      },
      40_000,
      250,
    );
    const shown = await page.evaluate(() => (window as unknown as { shown: Array<{ at: number; status: string; state: string; lit: string }> }).shown);
    const now = Date.now();
    // Each change whose state held for 1 s or more: when the page first showed it (0 when it already did at the change).
    const late = entries.flatMap((t, i) => {
      const until = entries[i + 1]?.ts ?? now;
      if (until - t.ts < 1_000) return [];
      const shows = (s: (typeof shown)[number]) =>
        t.event === 'failed' ? s.status === 'failed' || s.status === 'backoff' : s.status === 'running' && s.state === t.to && s.lit === t.to;
      const atChange = shown.filter((s) => s.at <= t.ts).at(-1);
      const first = atChange && shows(atChange) ? t.ts : shown.find((s) => s.at > t.ts && shows(s))?.at;
      return [{ event: t.event, to: t.to, ms: first === undefined ? Number.POSITIVE_INFINITY : first - t.ts }];
    });
    expect(late.map((l) => l.event === 'failed' || l.to)).toEqual(expect.arrayContaining([true, 'polling']));
    for (const l of late) expect(l.ms, `${l.event} → ${JSON.stringify(l.to)} shown after ${l.ms} ms`).toBeLessThan(1_000);
    await page.context().close();
  }, 60_000);

  it('values update in place: a few seconds of the feed change the values and add or remove no element of the models or channels', async () => {
    const { page } = await open('/ui/', 'viewer');
    await page.waitForSelector('.live[data-live="true"]');
    await sleep(500);
    await page.evaluate(() => {
      const counts = { values: 0, elements: 0 };
      (window as unknown as { counts: typeof counts }).counts = counts;
      const isElement = (n: Node) => n.nodeType === Node.ELEMENT_NODE;
      const observer = new MutationObserver((records) => {
        for (const r of records) {
          if (r.type === 'childList' && [...r.addedNodes, ...r.removedNodes].some(isElement)) counts.elements++;
          else if ((r.type === 'characterData' ? r.target.parentElement : (r.target as Element))?.closest('[data-value]')) counts.values++;
        }
      });
      // The models and the channels (the crashing one changes status meanwhile); the alarms' rows come and go by design.
      for (const s of ['#models', '#channels']) observer.observe(document.querySelector(s)!, { childList: true, characterData: true, subtree: true });
    });
    await sleep(3_000);
    const counts = await page.evaluate(() => (window as unknown as { counts: { values: number; elements: number } }).counts);
    expect(counts.values).toBeGreaterThan(5);
    expect(counts.elements).toBe(0);
    await page.context().close();
  });

  it('an operator sends a setpoint from the page and sees it confirmed', async () => {
    const { page } = await open('/ui/', 'operator');
    await page.waitForSelector('form.control');
    const option = await page.$$eval('form.control option', (os) => os.find((o) => /export_limit/.test(o.textContent ?? ''))?.getAttribute('value'));
    await page.selectOption('form.control select', option!);
    await page.fill('form.control input[name=value]', '42');
    await page.click('form.control button[type=submit]');
    await page.waitForSelector('[data-command-status="confirmed"]', { timeout: 10_000 });
    const id = /cmd-\S+/.exec((await page.textContent('ol.results li .detail')) ?? '')?.[0];
    expect((await api(`/api/v1/commands/${id}`, 'viewer')).body).toMatchObject({ status: 'confirmed', value: 42, source: 'demo-operator' });
    // Out of the point's limits: refused before anything is written, so rejected (as the CLI and the cloud say), not failed.
    await page.fill('form.control input[name=value]', '999');
    await page.click('form.control button[type=submit]');
    await page.waitForSelector('[data-command-status="rejected"]', { timeout: 10_000 });
    expect(await page.textContent('ol.results li:first-child .detail')).toContain('above the maximum 80');
    await page.context().close();
  });

  it('an operator acknowledges an active alarm on the page, and the API shows it acknowledged; the trend is drawn from history', async () => {
    // The demo raises some within seconds: the flaky weather sensor (env.comm), the grid's frequency band.
    const histories: number[] = [];
    const { page, problems } = await open('/ui/', 'operator');
    page.on('response', (r) => {
      if (r.url().includes('/api/v1/history?')) histories.push(r.status());
    });
    // An alarm unacknowledged on the page now (the demo's alarms come and go), acknowledged at once: it may still
    // return to normal meanwhile (returnedUnack), where an acknowledgement is taken too.
    const alarmId = await eventually(
      () =>
        page.evaluate(() => document.querySelector('[data-alarm-state="unacknowledged"]')?.closest('[data-alarm]')?.getAttribute('data-alarm') ?? undefined),
      60_000,
      250,
    );
    const alarm = { id: alarmId };
    const ack = `[data-alarm="${alarm.id}"] button[data-alarm-action="ack"]`;
    await page.waitForSelector(ack);
    await page.fill('input[name=alarm-comment]', 'seen on the dashboard');
    await page.click(ack);
    // The page follows the feed (the row shows acknowledged, or leaves once the alarm is back to normal) ...
    await page.waitForFunction(
      (id) => {
        const state = document.querySelector(`[data-alarm="${id}"] [data-alarm-state]`);
        return state === null || state.getAttribute('data-alarm-state') === 'acknowledged';
      },
      alarm.id,
      { timeout: 5_000 },
    );
    // ... and the API has the operator's acknowledgement.
    const stored = (await api(`/api/v1/alarms/${alarm.id}`, 'viewer')).body;
    const acks = (stored.history as Array<{ event: string; from: string; to: string; who: string; why: string }>).filter(
      (e) => e.event === 'ACK' && e.who === 'demo-operator',
    );
    expect(acks).toHaveLength(1);
    expect(acks[0]).toMatchObject({ why: 'seen on the dashboard' });
    expect([
      ['unacknowledged', 'acknowledged'],
      ['returnedUnack', 'normal'],
    ]).toContainEqual([acks[0]!.from, acks[0]!.to]);
    if (stored.active) expect(stored.state).toBe('acknowledged');
    // The trend: a canvas with values of the first model, the last 15 min from the history API, then the feed.
    await page.waitForSelector('#trend canvas');
    await page.waitForFunction(() => Number(document.querySelector('.trend')?.getAttribute('data-trend-points')) > 0, undefined, { timeout: 10_000 });
    expect(histories).toEqual([200]);
    expect(await page.textContent('#trend .hint')).toBe('');
    const before = Number(await page.getAttribute('.trend', 'data-trend-points'));
    await eventually(async () => Number(await page.getAttribute('.trend', 'data-trend-points')) > before, 5_000, 100);
    expect(problems).toEqual([]);
    await sleep(500);
    await page.screenshot({ path: 'docs/screenshots/dashboard.png', fullPage: true });
    await page.context().close();
  }, 90_000);

  it('an acknowledgement refused by the API (another operator was first) is shown in the row, naming the state', async () => {
    const alarm = await eventually(
      async () => {
        const list = (await api('/api/v1/alarms?active=true', 'viewer')).body.alarms as Array<{ id: string; state: string }>;
        return list.find((a) => a.state === 'unacknowledged' || a.state === 'returnedUnack');
      },
      60_000,
      250,
    );
    // The page's feed is held back for alarms, so its row still offers Acknowledge after the other operator's.
    let hold = false;
    const { page, problems } = await open('/ui/', 'operator', (p) =>
      p.routeWebSocket(/\/ws\b/, (ws) => {
        const server = ws.connectToServer();
        server.onMessage((m) => {
          if (!(hold && String(m).includes('"topic":"alarm/all"'))) ws.send(m);
        });
      }),
    );
    const row = `[data-alarm="${alarm.id}"]`;
    await page.waitForSelector(`${row} button[data-alarm-action="ack"]`);
    hold = true;
    expect((await api(`/api/v1/alarms/${alarm.id}/ack`, 'admin', { comment: 'first' })).status).toBe(200);
    await page.click(`${row} button[data-alarm-action="ack"]`);
    await page.waitForSelector(`${row} .note.error`);
    const now = (await api(`/api/v1/alarms/${alarm.id}`, 'viewer')).body.state as string;
    expect(await page.textContent(`${row} .note.error`)).toMatch(
      new RegExp(`^alarm '${alarm.id.replace('.', '\\.')}' (is ${now}: ack is not allowed in state ${now}|was changed meanwhile; it is now ${now} )`),
    );
    // The refusal is the only problem: Chromium logs the 409 as well.
    expect(problems.filter((p) => !/\b409\b/.test(p))).toEqual([]);
    expect(problems.length).toBeGreaterThan(0);
    await page.context().close();
  }, 90_000);

  it('a viewer is offered no control and no alarm action, and the API refuses the viewer anyway (403)', async () => {
    const { page } = await open('/ui/', 'viewer');
    await page.waitForSelector('[data-value="grid.P"]');
    expect(await page.$$('form.control')).toHaveLength(0);
    // Alarms are shown to a viewer, with no button to act on them.
    const active = await eventually(async () => ((await api('/api/v1/alarms?active=true', 'viewer')).body.alarms as Array<{ id: string }>)[0], 60_000, 250);
    await page.waitForSelector(`[data-alarm="${active.id}"]`);
    expect(await page.$$('[data-alarm-action], input[name=alarm-comment]')).toHaveLength(0);
    expect(await page.$$('main button')).toHaveLength(0);
    const r = await api('/api/v1/models/gw/controls/export_limit', 'viewer', { value: 10 });
    expect(r.status).toBe(403);
    expect(r.body.error.code).toBe('FORBIDDEN');
    const ack = await api(`/api/v1/alarms/${active.id}/ack`, 'viewer', { comment: 'not mine to do' });
    expect(ack.status).toBe(403);
    expect(ack.body.error.code).toBe('FORBIDDEN');
    expect(await page.textContent('header .who')).toContain('viewer');
    await page.context().close();
  }, 90_000);
});
