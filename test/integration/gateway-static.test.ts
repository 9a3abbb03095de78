/**
 * The pages' files over real HTTP: content types, gzip when asked, a 304 for a
 * known ETag, the pages at their addresses, and a JSON 404 for anything else.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gatewaySchema } from '../../runtime/config/schema.js';
import { Http } from '../../runtime/gateway/http.js';
import { staticRoutes } from '../../runtime/gateway/static.js';
import { writeSite } from '../helpers/servers.js';

let http: Http;
let base = '';
const script = `console.log(${JSON.stringify('x'.repeat(2000))});\n`;

beforeAll(async () => {
  const dir = writeSite({
    'index.html': '<!doctype html><title>d</title>',
    'actors.html': '<!doctype html><title>a</title>',
    'dashboard.js': script,
    'style.css': 'body{}',
    'notes.txt': 'not served',
  });
  http = new Http(gatewaySchema.parse({ port: 0 }));
  staticRoutes(http.app, dir);
  http.notFound();
  base = `http://127.0.0.1:${await http.listen()}`;
});
afterAll(() => http.close());

/** An answer without following redirects (fetch inflates a gzip body by itself). */
async function raw(path: string, headers: Record<string, string> = {}) {
  const r = await fetch(base + path, { headers, redirect: 'manual' });
  return { status: r.status, headers: r.headers, body: Buffer.from(await r.arrayBuffer()) };
}

describe('static pages', () => {
  it('the pages at their addresses, with their content types and no-cache', async () => {
    const index = await raw('/ui/');
    expect(index.status).toBe(200);
    expect(index.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(index.headers.get('cache-control')).toBe('no-cache');
    expect(index.body.toString()).toContain('<title>d</title>');
    expect((await raw('/ui/actors')).body.toString()).toContain('<title>a</title>');
    expect((await raw('/ui/style.css')).headers.get('content-type')).toBe('text/css; charset=utf-8');
    const ui = await raw('/ui');
    expect(ui.status).toBe(301);
    expect(ui.headers.get('location')).toBe('/ui/');
  });

  it('gzip when the client takes it (fetch inflates it back to the same bytes)', async () => {
    const r = await fetch(`${base}/ui/dashboard.js`, { headers: { 'accept-encoding': 'gzip' } });
    expect(r.headers.get('content-encoding')).toBe('gzip');
    expect(Number(r.headers.get('content-length'))).toBeLessThan(script.length / 4);
    expect(await r.text()).toBe(script);
    expect(r.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
  });

  it('304 for the ETag the client has', async () => {
    const first = await raw('/ui/dashboard.js');
    const etag = first.headers.get('etag')!;
    expect(etag).toMatch(/^".+"$/);
    const again = await raw('/ui/dashboard.js', { 'if-none-match': etag });
    expect(again.status).toBe(304);
    expect(again.body.length).toBe(0);
  });

  it('a JSON 404 for a file that is not one of the pages, and outside /ui/', async () => {
    for (const path of ['/ui/notes.txt', '/ui/nope.js', '/ui/../package.json', '/elsewhere']) {
      const r = await raw(path);
      expect(r.status, path).toBe(404);
      expect(JSON.parse(r.body.toString()).error.code).toBe('NOT_FOUND');
    }
  });
});
