/**
 * GET /api/v1/history?series=…&from=…&to=…&step=…&agg=… (viewer): values from the
 * history database, as JSON or, with `Accept: text/csv` (or `format=csv`), as
 * CSV. GET /api/v1/history/series: the series there are. The semantics are in
 * actors/history/query.ts; a HistoryQueryError becomes its status (400 bad
 * input or too many points, 404 unknown series, 503 database down).
 *
 * Http's Request carries no Accept header yet: until it does (read
 * `req.getHeader('accept')` before the first await in Http.route), `format=csv`
 * selects CSV.
 */
import { ApiError, type Http, type Request } from '../http.js';
import { historyCsv, HistoryQueryError, type HistoryQueries } from '../../../actors/history/query.js';

function asApiError(e: unknown): unknown {
  return e instanceof HistoryQueryError ? new ApiError(e.status, e.code, e.message) : e;
}

export function historyRoutes(http: Http, history: HistoryQueries): void {
  http.route('get', '/api/v1/history', 'viewer', async (req: Request & { readonly accept?: string }) => {
    const q = req.query;
    try {
      const answer = await history.query({ series: q.get('series'), from: q.get('from'), to: q.get('to'), step: q.get('step'), agg: q.get('agg') });
      const csv = q.get('format') === 'csv' || /\btext\/csv\b/.test(req.accept ?? '');
      return csv ? { status: 200, body: historyCsv(answer), contentType: 'text/csv; charset=utf-8' } : { status: 200, body: answer };
    } catch (e) {
      throw asApiError(e);
    }
  });
  http.route('get', '/api/v1/history/series', 'viewer', async () => {
    try {
      return { status: 200, body: { series: await history.list() } };
    } catch (e) {
      throw asApiError(e);
    }
  });
}
