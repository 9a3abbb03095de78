/**
 * CORS over real HTTP: a preflight from an origin in gateway.cors.origins is
 * answered with permission, and the answers to that origin carry it; any other
 * origin, and every origin when none is configured, gets no permission.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gatewaySchema } from '../../runtime/config/schema.js';
import { Http, sha256 } from '../../runtime/gateway/http.js';
import { meRoutes } from '../../runtime/gateway/routes/me.js';

const PANEL = 'https://panel.example:3000';
const token = 'viewer-token';

async function serve(origins: string[]): Promise<{ http: Http; base: string }> {
  const http = new Http(gatewaySchema.parse({ port: 0, cors: { origins }, tokens: [{ name: 'vera', role: 'viewer', sha256: sha256(token) }] }));
  meRoutes(http);
  http.notFound();
  const port = await http.listen();
  return { http, base: `http://127.0.0.1:${port}` };
}

const preflight = (base: string, origin: string) =>
  fetch(`${base}/api/v1/me`, {
    method: 'OPTIONS',
    headers: { origin, 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization' },
  });

describe('CORS with configured origins', () => {
  let s: { http: Http; base: string };
  beforeAll(async () => {
    s = await serve([PANEL]);
  });
  afterAll(() => s.http.close());

  it('answers the preflight of a configured origin', async () => {
    const r = await preflight(s.base, PANEL);
    expect(r.status).toBe(204);
    expect(r.headers.get('access-control-allow-origin')).toBe(PANEL);
    expect(r.headers.get('access-control-allow-methods')).toBe('GET, POST, DELETE');
    expect(r.headers.get('access-control-allow-headers')).toContain('authorization');
  });

  it('a request from that origin carries the permission; one from elsewhere does not', async () => {
    const ok = await fetch(`${s.base}/api/v1/me`, { headers: { origin: PANEL, authorization: `Bearer ${token}` } });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('access-control-allow-origin')).toBe(PANEL);
    expect(await ok.json()).toEqual({ name: 'vera', role: 'viewer' });
    const other = await fetch(`${s.base}/api/v1/me`, { headers: { origin: 'https://evil.example', authorization: `Bearer ${token}` } });
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('refuses the preflight of another origin (including a prefix of a configured one)', async () => {
    for (const origin of ['https://evil.example', 'https://panel.example', 'null']) {
      const r = await preflight(s.base, origin);
      expect(r.status).toBe(403);
      expect(r.headers.get('access-control-allow-origin')).toBeNull();
      expect((await r.json()).error.code).toBe('CORS');
    }
  });
});

describe('CORS with no origins configured', () => {
  let s: { http: Http; base: string };
  beforeAll(async () => {
    s = await serve([]);
  });
  afterAll(() => s.http.close());

  it('allows none', async () => {
    const r = await preflight(s.base, PANEL);
    expect(r.status).toBe(403);
    expect(r.headers.get('access-control-allow-origin')).toBeNull();
    const get = await fetch(`${s.base}/api/v1/me`, { headers: { origin: PANEL, authorization: `Bearer ${token}` } });
    expect(get.status).toBe(200);
    expect(get.headers.get('access-control-allow-origin')).toBeNull();
  });
});

describe('the schema', () => {
  it('takes origins only: scheme, host and port, no path', () => {
    expect(gatewaySchema.safeParse({ cors: { origins: ['https://a.example/path'] } }).success).toBe(false);
    expect(gatewaySchema.safeParse({ cors: { origins: ['*'] } }).success).toBe(false);
    expect(gatewaySchema.parse({}).cors.origins).toEqual([]);
  });
});
