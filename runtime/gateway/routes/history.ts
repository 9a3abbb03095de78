/**
 * GET /api/v1/history?series=…&from=…&to=…&step=…&agg=… (viewer): values from the
 * history database, as JSON or, with `Accept: text/csv` (or `format=csv`), as
 * CSV. GET /api/v1/history/series: the series there are. The semantics are in
 * actors/history/query.ts; a HistoryQueryError becomes its status (400 bad
 * input or too many points, 404 unknown series, 503 database down). A site
 * without history (no `history` section, or no VictoriaMetrics to ask) answers
 * 503 NO_HISTORY.
 */
import { ApiError, type Http, type Request } from '../http.js';
import { historyCsv, HistoryQueryError, type HistoryQueries } from '../../../actors/history/query.js';

function asApiError(e: unknown): unknown {
  return e instanceof HistoryQueryError ? new ApiError(e.status, e.code, e.message) : e;
}

const NO_HISTORY =
  'this site keeps no history that can be queried: its config has no history section, or no VictoriaMetrics backend (InfluxDB has no Prometheus query API)';

export function historyRoutes(http: Http, history: HistoryQueries | undefined): void {
  http.route('get', '/api/v1/history', 'viewer', async (req: Request) => {
    const q = req.query;
    if (!history) throw new ApiError(503, 'NO_HISTORY', NO_HISTORY);
    try {
      const answer = await history.query({ series: q.get('series'), from: q.get('from'), to: q.get('to'), step: q.get('step'), agg: q.get('agg') });
      const csv = q.get('format') === 'csv' || /\btext\/csv\b/.test(req.accept);
      return csv ? { status: 200, body: historyCsv(answer), contentType: 'text/csv; charset=utf-8' } : { status: 200, body: answer };
    } catch (e) {
      throw asApiError(e);
    }
  });
  http.route('get', '/api/v1/history/series', 'viewer', async () => {
    if (!history) throw new ApiError(503, 'NO_HISTORY', NO_HISTORY);
    try {
      return { status: 200, body: { series: await history.list() } };
    } catch (e) {
      throw asApiError(e);
    }
  });
}
