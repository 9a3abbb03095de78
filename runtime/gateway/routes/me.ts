/** GET /api/v1/me: who the token is and its role, so that a page offers only what that role may do. */
import type { Http } from '../http.js';

export function meRoutes(http: Http): void {
  http.route('get', '/api/v1/me', 'viewer', async ({ caller }) => ({ status: 200, body: { name: caller?.name ?? null, role: caller?.role ?? null } }));
}
