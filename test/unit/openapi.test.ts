/**
 * The OpenAPI document against the routes: every route the gateway registers is
 * described (the gateway checks it at start; here the check itself is tested).
 */
import { describe, expect, it } from 'vitest';
import { openApiDocument, undocumentedRoutes } from '../../runtime/gateway/openapi.js';

describe('the OpenAPI document', () => {
  const doc = openApiDocument();

  it("describes the visualizer's routes and /me, with the actor id as one parameter", () => {
    const paths = doc.paths as Record<string, Record<string, { parameters?: Array<{ name: string; in: string }> }>>;
    for (const p of ['/api/v1/me', '/api/v1/actors/{id}', '/api/v1/actors/{id}/machine', '/api/v1/actors/{id}/transitions']) {
      expect(paths[p]?.get, p).toBeDefined();
    }
    expect(paths['/api/v1/actors/{id}/transitions']!.get!.parameters!.map((x) => `${x.in}:${x.name}`)).toEqual(['path:id', 'query:count']);
  });

  it("describes the cloud links' routes: the list, the parked messages, the resend (operator) with its body, its outcome, its cancel (operator)", () => {
    const paths = doc.paths as Record<string, Record<string, { requestBody?: unknown; parameters?: Array<{ name: string; in: string }> }>>;
    expect(paths['/api/v1/cloud']?.get).toBeDefined();
    expect(paths['/api/v1/cloud/{id}/refused']!.get!.parameters!.map((x) => `${x.in}:${x.name}`)).toEqual(['path:id', 'query:count']);
    expect(JSON.stringify(paths['/api/v1/cloud/{id}/refused/resend']!.post!.requestBody)).toContain('fromSeq');
    expect(paths['/api/v1/cloud/{id}/resends/{request}']?.get).toBeDefined();
    expect(JSON.stringify(paths['/api/v1/cloud/{id}/resends/{request}']!.delete)).toContain('409');
    expect(
      undocumentedRoutes(
        [
          { method: 'post', pattern: '/api/v1/cloud/:id/refused/resend' },
          { method: 'get', pattern: '/api/v1/cloud/:id/resends/:request' },
          { method: 'delete', pattern: '/api/v1/cloud/:id/resends/:request' },
        ],
        doc,
      ),
    ).toEqual([]);
  });

  it('says which origins may call it across origins, and that none may when none is configured', () => {
    const info = doc.info as { description: string };
    expect(info.description).toContain('gateway.cors.origins');
    expect(info.description).toContain('with no origins configured none is allowed');
  });

  it('undocumentedRoutes: names what is missing; consecutive parameters are one id with a slash', () => {
    expect(
      undocumentedRoutes(
        [
          { method: 'get', pattern: '/api/v1/models/:id' },
          { method: 'post', pattern: '/api/v1/models/:id/controls/:name' },
          { method: 'get', pattern: '/api/v1/actors/:kind/:id' },
          { method: 'get', pattern: '/api/v1/actors/:kind/:id/machine' },
          { method: 'get', pattern: '/api/v1/actors/:id/transitions' },
          { method: 'get', pattern: '/api/v1/alarms' },
          { method: 'get', pattern: '/api/v1/alarms/:id' },
          { method: 'post', pattern: '/api/v1/alarms/:id/shelve' },
          { method: 'get', pattern: '/api/v1/alarms/events' },
          { method: 'get', pattern: '/api/v1/alarms/stats' },
        ],
        doc,
      ),
    ).toEqual([]);
    expect(
      undocumentedRoutes(
        [
          { method: 'get', pattern: '/api/v1/nothing' },
          { method: 'post', pattern: '/api/v1/actors/:id' },
          { method: 'get', pattern: '/api/v1/me' },
        ],
        doc,
      ),
    ).toEqual(['get /api/v1/nothing', 'post /api/v1/actors/:id']);
  });
});
