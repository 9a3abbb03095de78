/**
 * Page weight: what /ui/ and /ui/actors cost a browser on a 1,000-point site
 * (10 virtual channels × 100 points, one model of 100 values on each), in
 * Debian's Chromium driven by playwright-core, each load in a fresh context
 * (cold cache). Transfer is every HTTP request's bytes on the wire as Chromium
 * counts them (CDP `encodedDataLength`: headers and bodies, the static assets
 * gzipped), up to the page being ready and a second of its feed; WebSocket
 * frames are not requests and are not counted. First render is from navigation
 * start to the first model value in the DOM (a MutationObserver in the page).
 * Updates in place: once the dashboard shows its values and its feed is live
 * (and 2 s more, for the trend's history), a MutationObserver on the page's
 * main counts for 5 s the changes of a value cell's text and the element nodes
 * added or removed anywhere (a rebuilt row or card would be those).
 * Targets: under 300 kB, first render under 1 s; values change, no element.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { sha256 } from '../../runtime/gateway/http.js';
import { freePort, spawnRedis } from '../../runtime/redisServer.js';
import { f } from './harness.js';
import { percentile } from './procstat.js';

const CHROMIUM = '/usr/bin/chromium';
const TOKEN = 'bench-token';
const CHANNELS = 10;
const POINTS = 100;
const LOADS = 5;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function siteFiles(port: number): Record<string, string> {
  const files: Record<string, string> = {
    'gateway.yaml': `gateway:\n  port: ${port}\n  rateLimit: { perSecond: 100000, burst: 100000 }\n  tokens:\n    - { name: bench, role: operator, sha256: ${sha256(TOKEN)} }\n`,
    'points.csv': `type,id,name,unit,sim.kind,sim.start,sim.step\n${Array.from({ length: POINTS }, (_, i) => `m,${i},p${i},kW,counter,${i},1`).join('\n')}\n`,
  };
  const channels = Array.from({ length: CHANNELS }, (_, c) => `  - { id: v${c}, protocol: virtual, pollMs: 1000, pointsFile: points.csv }`);
  const models = Array.from({ length: CHANNELS }, (_, c) => `  - { id: m${c}, template: hundred, channel: v${c} }`);
  const measurements = Array.from({ length: POINTS }, (_, i) => `p${i}: { unit: kW }`).join(', ');
  files['site.yaml'] = `channels:\n${channels.join('\n')}\nmodels:\n${models.join('\n')}\ntemplates:\n  hundred:\n    measurements: { ${measurements} }\n`;
  return files;
}

interface Load {
  readonly bytes: number;
  readonly requests: number;
  readonly firstValueMs: number;
}

/** One cold load of `path`, signed in (the token put where the sign-in form would keep it). */
async function load(browser: Browser, base: string, path: string, ready: string): Promise<Load> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  try {
    const page = await context.newPage();
    await page.addInitScript((token) => {
      sessionStorage.setItem('voltage.token', token);
      const w = window as unknown as { firstValueAt?: number };
      new MutationObserver((_m, obs) => {
        if (document.querySelector('[data-value]')) {
          w.firstValueAt = performance.now();
          obs.disconnect();
        }
      }).observe(document, { childList: true, subtree: true });
    }, TOKEN);
    const cdp = await context.newCDPSession(page);
    await cdp.send('Network.enable');
    let bytes = 0;
    let requests = 0;
    cdp.on('Network.requestWillBeSent', () => {
      requests++;
    });
    cdp.on('Network.loadingFinished', (e) => {
      bytes += e.encodedDataLength;
    });
    await page.goto(base + path);
    await page.waitForSelector(ready, { timeout: 30_000 });
    await sleep(1_000); // what the page asks for once it shows (a machine graph), and a second of its feed
    const firstValueMs = await page.evaluate(() => (window as unknown as { firstValueAt?: number }).firstValueAt ?? Number.NaN);
    return { bytes, requests, firstValueMs };
  } finally {
    await context.close();
  }
}

const WATCH_MS = 5_000;

interface InPlace {
  /** Changes of a value cell's text (a text node replaced or its data changed). */
  readonly valueUpdates: number;
  /** Value cells whose text changed at least once. */
  readonly cells: number;
  readonly added: number;
  readonly removed: number;
  /** Where elements were added or removed: the section's id, and how many records. */
  readonly where: Readonly<Record<string, number>>;
}

/** The dashboard, signed in and live, watched for WATCH_MS: what its feed changed in the DOM. */
async function inPlace(browser: Browser, base: string): Promise<InPlace> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  try {
    const page = await context.newPage();
    await page.addInitScript((token) => sessionStorage.setItem('voltage.token', token), TOKEN);
    await page.goto(`${base}/ui/`);
    await page.waitForSelector('.live[data-live="true"]', { timeout: 30_000 });
    await sleep(2_000);
    await page.evaluate(() => {
      const seen = { valueUpdates: 0, cells: new Set<string>(), added: 0, removed: 0, where: {} as Record<string, number> };
      (window as unknown as { seen: typeof seen }).seen = seen; // no named function in here: tsx would wrap it in __name, unknown in the page
      new MutationObserver((records) => {
        for (const r of records) {
          const target = r.type === 'characterData' ? r.target.parentElement : (r.target as Element);
          const added = [...r.addedNodes].filter((n) => n.nodeType === Node.ELEMENT_NODE).length;
          const removed = [...r.removedNodes].filter((n) => n.nodeType === Node.ELEMENT_NODE).length;
          if (added + removed > 0) {
            seen.added += added;
            seen.removed += removed;
            const section = target?.closest('section')?.id ?? 'main';
            seen.where[section] = (seen.where[section] ?? 0) + 1;
            continue;
          }
          const cell = target?.closest('[data-value]');
          if (!cell) continue;
          seen.valueUpdates++;
          seen.cells.add(cell.getAttribute('data-value') ?? '');
        }
      }).observe(document.querySelector('main')!, { childList: true, characterData: true, subtree: true });
    });
    await sleep(WATCH_MS);
    return await page.evaluate(() => {
      const seen = (window as unknown as { seen: { valueUpdates: number; cells: Set<string>; added: number; removed: number; where: Record<string, number> } })
        .seen;
      return { valueUpdates: seen.valueUpdates, cells: seen.cells.size, added: seen.added, removed: seen.removed, where: seen.where };
    });
  } finally {
    await context.close();
  }
}

export const PAGES_HEADER = `| page | transfer p50 (kB, ${LOADS} cold loads) | requests | first values shown p50 / max (ms) | ${WATCH_MS / 1000} s of feed: value updates (cells) / elements added + removed |\n|---|---|---|---|---|`;

/** The table rows, or one line saying why there are none. */
export async function pagesRows(): Promise<string[]> {
  if (!existsSync(CHROMIUM)) return [`skipped: no ${CHROMIUM} (apt-get install chromium, or run .ci/setup)`];
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'voltage-pages-bench-'));
  for (const [n, t] of Object.entries(siteFiles(port))) writeFileSync(join(dir, n), t);
  const redis = await spawnRedis();
  const rt = spawn('./runtime/bin/voltage.js', ['start', '--config', dir], {
    env: { ...process.env, REDIS_URL: redis.url, LOG_FORMAT: 'json' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const base = `http://127.0.0.1:${port}`;
  let browser: Browser | undefined;
  try {
    for (let i = 0; ; i++) {
      if (rt.exitCode !== null) throw new Error(`runtime exited with ${rt.exitCode}`);
      if (i > 600) throw new Error('the gateway did not answer within 60 s');
      const r = await fetch(`${base}/api/v1/models/m${CHANNELS - 1}`, { headers: { authorization: `Bearer ${TOKEN}` } }).catch(() => undefined);
      if (r?.ok && ((await r.json()) as { values?: Array<{ value: number | null }> }).values?.[0]?.value != null) break;
      await sleep(100);
    }
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
    await load(browser, base, '/ui/', '[data-value]'); // Chromium's own first start, not counted
    const rows: string[] = [];
    for (const [path, ready] of [
      ['/ui/', '[data-value]'],
      ['/ui/actors', '[data-actor]'],
    ] as const) {
      const loads: Load[] = [];
      for (let i = 0; i < LOADS; i++) loads.push(await load(browser, base, path, ready));
      const kb = loads.map((l) => l.bytes / 1024).sort((a, b) => a - b);
      const first = loads
        .map((l) => l.firstValueMs)
        .filter(Number.isFinite)
        .sort((a, b) => a - b);
      const render = path === '/ui/' ? `${f(percentile(first, 50))} / ${f(first.at(-1) ?? Number.NaN)}` : '—';
      let updates = '—';
      if (path === '/ui/') {
        const u = await inPlace(browser, base);
        const where = Object.entries(u.where).map(([k, n]) => `#${k} ${n}`);
        updates = `${f(u.valueUpdates)} (${f(u.cells)}) / ${u.added} + ${u.removed}${where.length ? ` (${where.join(', ')})` : ''}`;
      }
      rows.push(
        `| \`${path}\` | ${f(percentile(kb, 50), 1)} | ${percentile(
          loads.map((l) => l.requests).sort((a, b) => a - b),
          50,
        )} | ${render} | ${updates} |`,
      );
    }
    return rows;
  } finally {
    await browser?.close();
    rt.kill('SIGTERM');
    if (rt.exitCode === null) await new Promise((r) => rt.once('exit', r));
    await redis.stop();
  }
}

export const PAGES_WORKLOAD = `${CHANNELS} virtual channels × ${POINTS} points (1,000 points), a model of ${POINTS} values on each, polled every 1 s; Chromium headless, each load a fresh context (cold cache)`;
