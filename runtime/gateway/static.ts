/**
 * The pages under /ui/ (the dashboard and the visualizer), served on the
 * gateway's port from dist/ui, which runtime/bin/build.js bundles from ui/ at
 * `npm ci`/build time: nothing comes from a CDN, so the pages work on a box
 * with no internet. The files are few and small: they are read and gzipped
 * once at start and answered from memory with an ETag, so a reload costs a 304.
 * A path that is not one of them is a JSON 404, as everywhere else.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import type uWS from 'uWebSockets.js';

const TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.map': 'application/json',
};

/** Pages by their address (besides their file names). */
const PAGES: Readonly<Record<string, string>> = { '': 'index.html', actors: 'actors.html' };

interface Asset {
  readonly type: string;
  readonly body: Buffer;
  readonly gzip: Buffer | undefined;
  readonly etag: string;
}

/** dist/ui next to the bundle (dist/voltage.mjs) or, from the sources, at the top of the checkout. */
export function uiDir(): string | undefined {
  const candidates = [new URL('./ui/', import.meta.url), new URL('../../dist/ui/', import.meta.url)];
  for (const c of candidates) {
    const dir = fileURLToPath(c);
    if (existsSync(join(dir, 'index.html'))) return dir;
  }
  return undefined;
}

export function loadAssets(dir: string): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  for (const name of readdirSync(dir)) {
    const type = TYPES[extname(name)];
    if (!type) continue;
    const body = readFileSync(join(dir, name));
    // Compressing what is already compressed (PNG) buys nothing.
    const gzip = type.startsWith('image/png') ? undefined : gzipSync(body, { level: 9 });
    const etag = `"${createHash('sha1').update(body).digest('base64url').slice(0, 16)}"`;
    assets.set(name, { type, body, gzip: gzip && gzip.length < body.length ? gzip : undefined, etag });
  }
  return assets;
}

function notFound(res: uWS.HttpResponse, message: string): void {
  res.cork(() =>
    res
      .writeStatus('404 Not Found')
      .writeHeader('content-type', 'application/json')
      .end(JSON.stringify({ error: { code: 'NOT_FOUND', message } })),
  );
}

export function staticRoutes(app: uWS.TemplatedApp, dir: string | undefined = uiDir()): void {
  const assets = dir ? loadAssets(dir) : new Map<string, Asset>();
  app.get('/ui', (res) => {
    res.cork(() => res.writeStatus('301 Moved Permanently').writeHeader('location', '/ui/').end());
  });
  app.get('/ui/*', (res, req) => {
    const name = req.getUrl().slice('/ui/'.length);
    const asset = assets.get(PAGES[name] ?? name);
    if (!asset) {
      notFound(res, assets.size === 0 ? 'the pages are not built: run npm run build' : `no page or file '${name}'`);
      return;
    }
    const fresh = req.getHeader('if-none-match') === asset.etag;
    const gzip = asset.gzip && /\bgzip\b/.test(req.getHeader('accept-encoding'));
    res.cork(() => {
      // no-cache: the browser revalidates (a 304 with the ETag), so a new build shows at the next load.
      res
        .writeStatus(fresh ? '304 Not Modified' : '200 OK')
        .writeHeader('cache-control', 'no-cache')
        .writeHeader('etag', asset.etag)
        .writeHeader('vary', 'accept-encoding')
        .writeHeader('x-content-type-options', 'nosniff');
      if (fresh) {
        res.endWithoutBody();
        return;
      }
      res.writeHeader('content-type', asset.type);
      if (gzip) res.writeHeader('content-encoding', 'gzip').end(asset.gzip!);
      else res.end(asset.body);
    });
  });
}
