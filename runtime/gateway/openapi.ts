/**
 * The API's schemas and the OpenAPI 3 document made from them: the same zod
 * schema validates a request body and describes it here, so the two cannot
 * drift apart. Nor can the routes: the gateway refuses to start with a route
 * this document does not describe (`undocumentedRoutes`).
 */
import { z } from 'zod';

export const controlBody = z.strictObject({ value: z.number().describe('the setpoint, in the control\'s unit') });
export const errorBody = z.strictObject({ error: z.strictObject({ code: z.string(), message: z.string() }) });

const json = (schema: z.ZodType) => ({ 'application/json': { schema: z.toJSONSchema(schema, { unrepresentable: 'any' }) } });
const errors = (...codes: number[]) => Object.fromEntries(codes.map((c) => [String(c), { description: 'error', content: json(errorBody) }]));
const ok = (description: string) => ({ description, content: { 'application/json': { schema: { type: 'object' } } } });
const id = (name: string, description?: string) => ({ name, in: 'path', required: true, schema: { type: 'string' }, ...(description ? { description } : {}) });
const actorId = id('id', "the actor's id; it may hold a slash (`channel/1001`), sent as is or encoded");

const CORS = 'CORS: a browser on another origin may call the API when that origin is in `gateway.cors.origins`: its preflight (OPTIONS) is answered 204 with the allowed methods (GET, POST) and headers (authorization, content-type), and the answers carry `access-control-allow-origin`; any other origin gets 403, and with no origins configured none is allowed. Tokens go in the Authorization header, never in cookies: no credentials mode.';

export function openApiDocument(): Record<string, unknown> {
  const read = { security: [{ bearer: [] }] };
  return {
    openapi: '3.0.3',
    info: { title: 'VoltageEMS API', version: '1', description: `Roles: viewer reads, operator also sends controls, admin everything. WebSocket feed at /ws (token in ?token=), topics \`channel/*\`, \`model/*\` and \`actor/*\`. ${CORS}` },
    components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    paths: {
      '/health': { get: { summary: 'Redis reachable, actors by status (no token)', responses: { 200: ok('healthy or degraded'), ...errors(503) } } },
      '/api/v1/channels': { get: { ...read, summary: 'Channels with their actor state', responses: { 200: ok('channels'), ...errors(401, 403, 429) } } },
      '/api/v1/channels/{id}': { get: { ...read, summary: 'A channel and its points (value, ts, quality)', parameters: [id('id')], responses: { 200: ok('channel'), ...errors(401, 403, 404, 429) } } },
      '/api/v1/models': { get: { ...read, summary: 'Models', responses: { 200: ok('models'), ...errors(401, 403, 429) } } },
      '/api/v1/models/{id}': { get: { ...read, summary: 'A model\'s values, calculated ones included', parameters: [id('id')], responses: { 200: ok('model'), ...errors(401, 403, 404, 429) } } },
      '/api/v1/models/{id}/controls/{name}': {
        post: {
          ...read, summary: 'Send a control command (operator)', parameters: [id('id'), id('name')],
          requestBody: { required: true, content: json(controlBody) },
          responses: { 202: { description: 'accepted', content: { 'application/json': { schema: { type: 'object', properties: { commandId: { type: 'string' } } } } } }, ...errors(400, 401, 403, 404, 413, 429) },
        },
      },
      '/api/v1/commands/{id}': { get: { ...read, summary: 'A command\'s status and history', parameters: [id('id')], responses: { 200: ok('command'), ...errors(401, 403, 404, 429) } } },
      '/api/v1/rules': { get: { ...read, summary: 'Rules: state, priority, condition, counters', responses: { 200: ok('{ rules }'), ...errors(401, 403, 429) } } },
      '/api/v1/rules/{id}': { get: { ...read, summary: 'One rule: state (deadlines included), counters, definition and its last executions (newest first)', parameters: [id('id')], responses: { 200: ok('rule'), ...errors(401, 403, 404, 429) } } },
      '/api/v1/rules/{id}/enable': { post: { ...read, summary: 'Enable a rule (operator; audited in audit:rules)', parameters: [id('id')], responses: { 200: ok('{ id, state, changed }'), ...errors(401, 403, 404, 409, 429) } } },
      '/api/v1/rules/{id}/disable': { post: { ...read, summary: 'Disable a rule (operator; audited in audit:rules)', parameters: [id('id')], responses: { 200: ok('{ id, state, changed }'), ...errors(401, 403, 404, 409, 429) } } },
      '/api/v1/rules/{id}/evaluate': { post: { ...read, summary: 'Dry run over the values now: inputs, condition, the actions each branch would send; writes nothing', parameters: [id('id')], responses: { 200: ok('{ inputs, blocked, condition, then, else, wouldRun }'), ...errors(401, 403, 404, 409, 429) } } },
      '/api/v1/actors': { get: { ...read, summary: 'The supervisor tree', responses: { 200: ok('actors'), ...errors(401, 403, 429) } } },
      '/api/v1/actors/{id}': { get: { ...read, summary: 'One actor: status, machine state (`active`: the ids of the states it is in), restarts, backoff, last error', parameters: [actorId], responses: { 200: ok('actor'), ...errors(401, 403, 404, 429) } } },
      '/api/v1/actors/{id}/machine': { get: { ...read, summary: 'The actor\'s machine as a graph laid out for drawing: states (nested ones too) with boxes, transitions with event, guard and polyline, invoked actors; and its current state', parameters: [actorId], responses: { 200: ok('{ actor, state, graph }'), ...errors(401, 403, 404, 429) } } },
      '/api/v1/actors/{id}/transitions': {
        get: {
          ...read, summary: 'The actor\'s last transitions, newest first (event, from, to, time, the error that failed it), from its journal in Redis',
          parameters: [actorId, { name: 'count', in: 'query', required: false, schema: { type: 'integer', minimum: 1, maximum: 200, default: 50 } }],
          responses: { 200: ok('{ actor, transitions }'), ...errors(401, 403, 404, 429) },
        },
      },
      '/api/v1/me': { get: { ...read, summary: 'Who the token is and its role, so that a page offers only what that role may do', responses: { 200: ok('{ name, role }'), ...errors(401, 403, 429) } } },
      '/metrics': { get: { ...read, summary: 'Prometheus text', responses: { 200: { description: 'text/plain' }, ...errors(401, 403, 429) } } },
      '/api/v1/openapi.json': { get: { summary: 'This document (no token)', responses: { 200: ok('OpenAPI 3') } } },
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
  return routes.filter(({ method, pattern }) => {
    const path = pattern.replace(/(\/:\w+)+/g, (params) => `/{${params.split('/:').at(-1)}}`);
    return paths[path]?.[method] === undefined;
  }).map((r) => `${r.method} ${r.pattern}`);
}
