/**
 * The API's schemas and the OpenAPI 3 document made from them: the same zod
 * schema validates a request body and describes it here, so the two cannot
 * drift apart. Nor can the routes: the gateway refuses to start with a route
 * this document does not describe (`undocumentedRoutes`).
 */
import { z } from 'zod';
import { ALARM_ACTIONS, alarmActionBody } from './routes/alarms.js';
import { resendBody } from './routes/cloud.js';

export const controlBody = z.strictObject({ value: z.number().describe("the setpoint, in the control's unit") });
export const errorBody = z.strictObject({ error: z.strictObject({ code: z.string(), message: z.string() }) });

const json = (schema: z.ZodType) => ({ 'application/json': { schema: z.toJSONSchema(schema, { unrepresentable: 'any' }) } });
const errors = (...codes: number[]) => Object.fromEntries(codes.map((c) => [String(c), { description: 'error', content: json(errorBody) }]));
const ok = (description: string) => ({ description, content: { 'application/json': { schema: { type: 'object' } } } });
const id = (name: string, description?: string) => ({ name, in: 'path', required: true, schema: { type: 'string' }, ...(description ? { description } : {}) });
const actorId = id('id', "the actor's id; it may hold a slash (`channel/1001`), sent as is or encoded");

const CORS =
  'CORS: a browser on another origin may call the API when that origin is in `gateway.cors.origins`: its preflight (OPTIONS) is answered 204 with the allowed methods (GET, POST, DELETE) and headers (authorization, content-type), and the answers carry `access-control-allow-origin`; any other origin gets 403, and with no origins configured none is allowed. Tokens go in the Authorization header, never in cookies: no credentials mode.';

const query = (name: string, description: string, schema: Record<string, unknown> = { type: 'string' }) => ({
  name,
  in: 'query',
  required: false,
  schema,
  description,
});

/** History queries (runtime/gateway/routes/history.ts; semantics in actors/history/query.ts). */
const HISTORY_PATHS = {
  '/api/v1/history': {
    get: {
      security: [{ bearer: [] }],
      summary:
        'Stored values of one or more series, aggregated per step, from the history database (viewer). JSON: one `timestamps` array (epoch ms) and one `values` array a series, null for a gap; with `Accept: text/csv` (or `format=csv`) the same as CSV, a `time` column (ISO 8601) and one column a series',
      parameters: [
        { ...query('series', 'comma-separated series ids: `model/<model>/<name>`, `channel/<channel>/<m|s|c|a>/<point>`'), required: true },
        query('from', 'ISO 8601, epoch ms, `now`, or relative (`-24h`, `-15m`, `-7d`); default: `to` − 1 h'),
        query('to', 'the same forms; default now'),
        query('step', '`500ms`, `60s`, `5m`, `1h`, `1d` (a bare number is seconds); default: the range over 600 steps, at least 1 s'),
        query('agg', 'how the samples of a step are combined', { type: 'string', enum: ['mean', 'min', 'max', 'last', 'count'], default: 'mean' }),
        query('format', '`csv`: the CSV answer, as with `Accept: text/csv`', { type: 'string', enum: ['json', 'csv'] }),
      ],
      responses: {
        200: {
          description: '{ from, to, stepMs, agg, timestamps, series: [{ id, values }] }, or text/csv',
          content: { 'application/json': { schema: { type: 'object' } }, 'text/csv': { schema: { type: 'string' } } },
        },
        ...errors(400, 401, 403, 404, 429, 503),
      },
    },
  },
  '/api/v1/history/series': {
    get: {
      security: [{ bearer: [] }],
      summary: 'The series the history database holds, as ids for `series=` (viewer)',
      responses: { 200: ok('{ series: string[] }'), ...errors(401, 403, 429, 503) },
    },
  },
};

/** Cloud links (runtime/gateway/routes/cloud.ts; the resend in actors/cloud/resend.ts). */
const CLOUD_PATHS = {
  '/api/v1/cloud': {
    get: {
      security: [{ bearer: [] }],
      summary:
        'The cloud links with their counters (viewer): status, state, seq, sent, resentAfterReconnect, refused, parked (messages in cloud:<id>:refused now), unparked and refusedAgain (parked messages sent again: taken / refused again), dropped, notTaken, backlog (outbox entries not yet acknowledged), lastRefusal, lastError',
      responses: { 200: ok('{ links }'), ...errors(401, 403, 429) },
    },
  },
  '/api/v1/cloud/{id}/refused': {
    get: {
      security: [{ bearer: [] }],
      summary: "A link's parked messages, newest first (viewer): id in the parked stream, seq, topic, reason, payload as it was sent",
      parameters: [id('id'), query('count', 'how many, newest first', { type: 'integer', minimum: 1, maximum: 1000, default: 100 })],
      responses: { 200: ok('{ link, parked, messages }'), ...errors(400, 401, 403, 404, 429) },
    },
  },
  '/api/v1/cloud/{id}/refused/resend': {
    post: {
      security: [{ bearer: [] }],
      summary:
        "Send the link's parked messages again, every one or those with a seq in fromSeq..toSeq (operator; audited in audit:commands). The link does it through its own connection, between its live batches, 100 at a time; each goes with its original seq, topic and payload, so it arrives out of order. One the cloud takes leaves the parked stream; one it refuses again stays parked (refusedAgain). 202 with the request's id: GET /api/v1/cloud/{id}/resends/{request} tells its outcome",
      parameters: [id('id')],
      requestBody: { required: false, content: json(resendBody) },
      responses: {
        202: ok('{ link, request, state: requested, fromSeq, toSeq }'),
        ...errors(400, 401, 403, 404, 413, 429),
      },
    },
  },
  '/api/v1/cloud/{id}/resends/{request}': {
    get: {
      security: [{ bearer: [] }],
      summary:
        'Where a resend request stands (viewer): state requested, running, done, failed (a slice failed 3 times in a row: lastError says why) or cancelled; resent (taken by the cloud) and refused (again); kept a day once ended. What a failed or cancelled request had not sent stays parked',
      parameters: [id('id'), id('request', 'the id POST …/refused/resend answered')],
      responses: { 200: ok('{ link, id, state, fromSeq, toSeq, who, requestedAt, resent, refused, finishedAt, lastError }'), ...errors(401, 403, 404, 429) },
    },
    delete: {
      security: [{ bearer: [] }],
      summary:
        'Cancel a resend request (operator; audited in audit:commands as cloud.resend.cancel): the link ends it `cancelled` at its next step; what it has not sent stays parked. 202 with where it stands now; 404 no such request, 409 it has already ended',
      parameters: [id('id'), id('request', 'the id POST …/refused/resend answered')],
      responses: { 202: ok('{ link, request, state, cancel: requested }'), ...errors(401, 403, 404, 409, 429) },
    },
  },
};

export function openApiDocument(): Record<string, unknown> {
  const read = { security: [{ bearer: [] }] };
  return {
    openapi: '3.0.3',
    info: {
      title: 'VoltageEMS API',
      version: '1',
      description: `Roles: viewer reads, operator also sends controls, admin everything. WebSocket feed at /ws (token in ?token=), topics \`channel/*\`, \`model/*\`, \`actor/*\`, \`alarm/*\` and \`rule/*\` (each rule: its state changes, executions, their results and notify events). ${CORS}`,
    },
    components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    paths: {
      '/health': { get: { summary: 'Redis reachable, actors by status (no token)', responses: { 200: ok('healthy or degraded'), ...errors(503) } } },
      '/api/v1/channels': { get: { ...read, summary: 'Channels with their actor state', responses: { 200: ok('channels'), ...errors(401, 403, 429) } } },
      '/api/v1/channels/{id}': {
        get: {
          ...read,
          summary: 'A channel and its points (value, ts, quality)',
          parameters: [id('id')],
          responses: { 200: ok('channel'), ...errors(401, 403, 404, 429) },
        },
      },
      '/api/v1/models': { get: { ...read, summary: 'Models', responses: { 200: ok('models'), ...errors(401, 403, 429) } } },
      '/api/v1/models/{id}': {
        get: {
          ...read,
          summary: "A model's values, calculated ones included",
          parameters: [id('id')],
          responses: { 200: ok('model'), ...errors(401, 403, 404, 429) },
        },
      },
      '/api/v1/models/{id}/controls/{name}': {
        post: {
          ...read,
          summary: 'Send a control command (operator)',
          parameters: [id('id'), id('name')],
          requestBody: { required: true, content: json(controlBody) },
          responses: {
            202: { description: 'accepted', content: { 'application/json': { schema: { type: 'object', properties: { commandId: { type: 'string' } } } } } },
            ...errors(400, 401, 403, 404, 413, 429),
          },
        },
      },
      '/api/v1/commands/{id}': {
        get: { ...read, summary: "A command's status and history", parameters: [id('id')], responses: { 200: ok('command'), ...errors(401, 403, 404, 429) } },
      },
      '/api/v1/alarms': {
        get: {
          ...read,
          summary: 'Alarms (filters: state, severity, model, active=true; paged: limit, offset)',
          parameters: ['state', 'severity', 'model', 'active', 'limit', 'offset'].map((name) => ({
            name,
            in: 'query',
            required: false,
            schema: { type: 'string' },
          })),
          responses: { 200: ok('alarms'), ...errors(400, 401, 403, 429) },
        },
      },
      '/api/v1/alarms/{id}': {
        get: {
          ...read,
          summary: 'An alarm: definition, state, event history',
          parameters: [id('id')],
          responses: { 200: ok('alarm'), ...errors(401, 403, 404, 429) },
        },
      },
      ...Object.fromEntries(
        ALARM_ACTIONS.map((action) => [
          `/api/v1/alarms/{id}/${action}`,
          {
            post: {
              ...read,
              summary: `${action} an alarm (operator; audited; 409 when its state does not take it or someone else was first)`,
              parameters: [id('id')],
              requestBody: { required: false, content: json(alarmActionBody) },
              responses: { 200: ok('the alarm after the action'), ...errors(400, 401, 403, 404, 409, 413, 429) },
            },
          },
        ]),
      ),
      '/api/v1/alarms/events': {
        get: {
          ...read,
          summary: 'alarm:events, newest first (limit, before=entryId, id); Accept: text/csv for export',
          responses: {
            200: {
              description: 'events (JSON) or CSV',
              content: { 'application/json': { schema: { type: 'object' } }, 'text/csv': { schema: { type: 'string' } } },
            },
            ...errors(400, 401, 403, 429),
          },
        },
      },
      '/api/v1/alarms/stats': {
        get: {
          ...read,
          summary: 'Alarm KPIs: per 10 min, time in flood, top 10, chattering, standing, by severity',
          responses: { 200: ok('stats'), ...errors(401, 403, 429) },
        },
      },
      '/api/v1/rules': {
        get: { ...read, summary: 'Rules: state, priority, condition, counters', responses: { 200: ok('{ rules }'), ...errors(401, 403, 429) } },
      },
      '/api/v1/rules/{id}': {
        get: {
          ...read,
          summary:
            'One rule: state (deadlines included), counters, definition and its last journal entries (newest first): executions and their results (a deferred command, then what became of it, are two results of one execution)',
          parameters: [id('id')],
          responses: { 200: ok('rule'), ...errors(401, 403, 404, 429) },
        },
      },
      '/api/v1/rules/{id}/enable': {
        post: {
          ...read,
          summary: 'Enable a rule (operator; audited in audit:rules)',
          parameters: [id('id')],
          responses: { 200: ok('{ id, state, changed }'), ...errors(401, 403, 404, 409, 429) },
        },
      },
      '/api/v1/rules/{id}/disable': {
        post: {
          ...read,
          summary: 'Disable a rule (operator; audited in audit:rules)',
          parameters: [id('id')],
          responses: { 200: ok('{ id, state, changed }'), ...errors(401, 403, 404, 409, 429) },
        },
      },
      '/api/v1/rules/{id}/evaluate': {
        post: {
          ...read,
          summary: 'Dry run over the values now: inputs, condition, the actions each branch would send; writes nothing',
          parameters: [id('id')],
          responses: { 200: ok('{ inputs, blocked, condition, then, else, wouldRun }'), ...errors(401, 403, 404, 409, 429) },
        },
      },
      '/api/v1/actors': { get: { ...read, summary: 'The supervisor tree', responses: { 200: ok('actors'), ...errors(401, 403, 429) } } },
      '/api/v1/actors/{id}': {
        get: {
          ...read,
          summary: 'One actor: status, machine state (`active`: the ids of the states it is in), restarts, backoff, last error',
          parameters: [actorId],
          responses: { 200: ok('actor'), ...errors(401, 403, 404, 429) },
        },
      },
      '/api/v1/actors/{id}/machine': {
        get: {
          ...read,
          summary:
            "The actor's machine as a graph laid out for drawing: states (nested ones too) with boxes, transitions with event, guard and polyline, invoked actors; and its current state",
          parameters: [actorId],
          responses: { 200: ok('{ actor, state, graph }'), ...errors(401, 403, 404, 429) },
        },
      },
      '/api/v1/actors/{id}/transitions': {
        get: {
          ...read,
          summary: "The actor's last transitions, newest first (event, from, to, time, the error that failed it), from its journal in Redis",
          parameters: [actorId, { name: 'count', in: 'query', required: false, schema: { type: 'integer', minimum: 1, maximum: 200, default: 50 } }],
          responses: { 200: ok('{ actor, transitions }'), ...errors(401, 403, 404, 429) },
        },
      },
      '/api/v1/me': {
        get: {
          ...read,
          summary: 'Who the token is and its role, so that a page offers only what that role may do',
          responses: { 200: ok('{ name, role }'), ...errors(401, 403, 429) },
        },
      },
      '/metrics': { get: { ...read, summary: 'Prometheus text', responses: { 200: { description: 'text/plain' }, ...errors(401, 403, 429) } } },
      '/api/v1/openapi.json': { get: { summary: 'This document (no token)', responses: { 200: ok('OpenAPI 3') } } },
      ...HISTORY_PATHS,
      ...CLOUD_PATHS,
    },
  };
}

/**
 * The routes (`get /api/v1/models/:id`) that the document does not describe. Consecutive
 * parameters are one id with a slash in it (`/actors/:kind/:id` is `/actors/{id}`): the uWS
 * router matches one segment per parameter.
 */
export function undocumentedRoutes(routes: ReadonlyArray<{ readonly method: string; readonly pattern: string }>, doc: Record<string, unknown>): string[] {
  const paths = doc.paths as Record<string, Record<string, unknown>>;
  return routes
    .filter(({ method, pattern }) => {
      const path = pattern.replace(/(\/:\w+)+/g, (params) => `/{${params.split('/:').at(-1)}}`);
      return paths[path]?.[method] === undefined;
    })
    .map((r) => `${r.method} ${r.pattern}`);
}
