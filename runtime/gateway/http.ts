/**
 * The HTTP layer of the gateway on uWebSockets.js: routes with a required
 * role, JSON in and out, errors as {error: {code, message}} with the right
 * status, bearer tokens checked against their SHA-256, per-token rate limits
 * (token bucket) and a body size limit. Handlers are plain async functions
 * that return a value or throw an ApiError; they never touch uWS.
 */
import { createHash } from 'node:crypto';
import uWS from 'uWebSockets.js';
import type { GatewayConfig, Role } from '../config/schema.js';
import { REDIS_ERROR_CODES, VoltageError, errorMessage, isRedisError } from '../errors.js';

export class ApiError extends VoltageError {
  readonly status: number;
  constructor(status: number, code: string, message: string) {
    super('api', code, message);
    this.name = 'ApiError';
    this.status = status;
  }
}

const STATUS_TEXT: Readonly<Record<number, string>> = {
  200: '200 OK',
  202: '202 Accepted',
  400: '400 Bad Request',
  401: '401 Unauthorized',
  403: '403 Forbidden',
  404: '404 Not Found',
  405: '405 Method Not Allowed',
  409: '409 Conflict',
  413: '413 Payload Too Large',
  429: '429 Too Many Requests',
  500: '500 Internal Server Error',
  503: '503 Service Unavailable',
};

export interface Caller {
  readonly name: string;
  readonly role: Role;
}

export interface Request {
  readonly params: readonly string[];
  readonly query: URLSearchParams;
  readonly body: unknown;
  readonly caller: Caller | undefined;
  /** The Accept header ('' when none): a route that can answer in another format reads it. */
  readonly accept: string;
}

export interface Reply {
  readonly status: number;
  readonly body: unknown;
  readonly contentType?: string;
}

export type Handler = (req: Request) => Promise<Reply>;

/** `public` routes need no token. */
export type Access = 'public' | Role;
export type RouteMethod = 'get' | 'post' | 'delete';

const RANK: Readonly<Record<Role, number>> = { viewer: 0, operator: 1, admin: 2 };

export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

interface Bucket {
  tokens: number;
  at: number;
}

/** What a failure is to a client: its own ApiError, 503 when Redis is unreachable, else 500. */
function asApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  if (isRedisError(e, REDIS_ERROR_CODES.unavailable) || isRedisError(e, REDIS_ERROR_CODES.timeout)) {
    return new ApiError(503, 'REDIS_UNAVAILABLE', `Redis is unreachable: ${errorMessage(e)}`);
  }
  return new ApiError(500, 'INTERNAL', errorMessage(e));
}

/** The handler's answer, or a 503 once the request's deadline has passed (no request hangs). */
function withDeadline<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new ApiError(503, 'DEADLINE_EXCEEDED', `no answer within ${ms} ms (gateway.requestTimeoutMs); Redis may be unreachable`)),
      ms,
    );
  });
  return Promise.race([work, late]).finally(() => clearTimeout(timer));
}

export class Http {
  readonly app: uWS.TemplatedApp = uWS.App();
  private readonly callers = new Map<string, Caller>();
  private readonly buckets = new Map<string, Bucket>();
  private readonly knownTokens = new Map<string, Caller>();
  private listenSocket: uWS.us_listen_socket | undefined;
  private readonly origins: ReadonlySet<string>;

  constructor(
    private readonly cfg: GatewayConfig,
    extraTokens: ReadonlyArray<{ name: string; role: Role; token: string }> = [],
  ) {
    for (const t of cfg.tokens) this.callers.set(t.sha256, { name: t.name, role: t.role });
    for (const t of extraTokens) this.callers.set(sha256(t.token), { name: t.name, role: t.role });
    this.origins = new Set(cfg.cors.origins);
    this.preflight();
  }

  /**
   * CORS: a browser on another origin asks first (OPTIONS); only the origins in
   * `gateway.cors.origins` are answered with permission, and none when it is empty.
   * Tokens travel in the Authorization header, never in cookies: no credentials mode.
   */
  private preflight(): void {
    this.app.options('/*', (res, req) => {
      const origin = req.getHeader('origin');
      res.cork(() => {
        if (!this.origins.has(origin)) {
          res
            .writeStatus('403 Forbidden')
            .writeHeader('vary', 'origin')
            .writeHeader('content-type', 'application/json')
            .end(JSON.stringify({ error: { code: 'CORS', message: `origin '${origin}' is not in gateway.cors.origins` } }));
          return;
        }
        res
          .writeStatus('204 No Content')
          .writeHeader('vary', 'origin')
          .writeHeader('access-control-allow-origin', origin)
          .writeHeader('access-control-allow-methods', 'GET, POST, DELETE')
          .writeHeader('access-control-allow-headers', 'authorization, content-type')
          .writeHeader('access-control-max-age', '600')
          .endWithoutBody();
      });
    });
  }

  /** The caller of a bearer token, or an ApiError 401. */
  authenticate(authorization: string, queryToken: string | null): Caller {
    const m = /^Bearer\s+(\S+)$/i.exec(authorization);
    const token = m?.[1] ?? queryToken ?? undefined;
    if (!token)
      throw new ApiError(401, 'UNAUTHORIZED', 'send a token: the header Authorization: Bearer <token> (a WebSocket from a browser: ?token=<token> on its URL)');
    const known = this.knownTokens.get(token);
    if (known) return known;
    const caller = this.callers.get(sha256(token));
    if (!caller) throw new ApiError(401, 'UNAUTHORIZED', 'unknown token');
    // Tokens that authenticated are remembered (at most one entry per configured token),
    // so that a busy client does not cost a SHA-256 a request; unknown ones never are.
    if (this.knownTokens.size < this.callers.size) this.knownTokens.set(token, caller);
    return caller;
  }

  /** Token bucket per caller: `perSecond` refill, `burst` capacity. */
  private admit(caller: Caller): void {
    const now = performance.now();
    const { perSecond, burst } = this.cfg.rateLimit;
    const b = this.buckets.get(caller.name) ?? { tokens: burst, at: now };
    b.tokens = Math.min(burst, b.tokens + ((now - b.at) / 1000) * perSecond);
    b.at = now;
    this.buckets.set(caller.name, b);
    if (b.tokens < 1) throw new ApiError(429, 'RATE_LIMITED', `more than ${perSecond} requests/s (burst ${burst}) from '${caller.name}'`);
    b.tokens -= 1;
  }

  /** Every route registered, in order, for the check that each one is documented. */
  readonly routes: Array<{ readonly method: RouteMethod; readonly pattern: string }> = [];

  /** A route; DELETE, like GET, has no body. */
  route(method: RouteMethod, pattern: string, access: Access, handler: Handler): void {
    this.routes.push({ method, pattern });
    const paramCount = (pattern.match(/:/g) ?? []).length;
    this.app[method === 'delete' ? 'del' : method](pattern, (res, req) => {
      let aborted = false;
      res.onAborted(() => {
        aborted = true;
      });
      // uWS requests live on the stack: read everything before the first await.
      const authorization = req.getHeader('authorization');
      const accept = req.getHeader('accept');
      const origin = req.getHeader('origin');
      const allowOrigin = origin !== '' && this.origins.has(origin);
      const length = Number(req.getHeader('content-length') || 0);
      const query = new URLSearchParams(req.getQuery() ?? '');
      const params = Array.from({ length: paramCount }, (_, i) => decodeURIComponent(req.getParameter(i) ?? ''));
      const send = (r: Reply) => {
        if (aborted) return;
        res.cork(() => {
          res.writeStatus(STATUS_TEXT[r.status] ?? `${r.status}`);
          if (allowOrigin) res.writeHeader('access-control-allow-origin', origin).writeHeader('vary', 'origin');
          res.writeHeader('content-type', r.contentType ?? 'application/json').end(typeof r.body === 'string' ? r.body : JSON.stringify(r.body));
        });
      };
      const fail = (e: unknown) => {
        const err = asApiError(e);
        send({ status: err.status, body: { error: { code: err.code, message: err.message } } });
      };
      let caller: Caller | undefined;
      try {
        if (access !== 'public') {
          caller = this.authenticate(authorization, query.get('token'));
          if (RANK[caller.role] < RANK[access]) throw new ApiError(403, 'FORBIDDEN', `'${caller.name}' is a ${caller.role}; this needs ${access}`);
          this.admit(caller);
        }
        if (length > this.cfg.maxBodyBytes) throw new ApiError(413, 'BODY_TOO_LARGE', `the body is ${length} bytes; at most ${this.cfg.maxBodyBytes}`);
      } catch (e) {
        // The body is not read: close after answering so that it is not taken for the next request.
        if (method === 'post') res.onData(() => undefined);
        fail(e);
        return;
      }
      const run = (body: unknown) => withDeadline(handler({ params, query, body, caller, accept }), this.cfg.requestTimeoutMs).then(send, fail);
      if (method !== 'post') {
        void run(undefined);
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.onData((chunk, isLast) => {
        if (size < 0) return;
        size += chunk.byteLength;
        if (size > this.cfg.maxBodyBytes) {
          size = -1;
          fail(new ApiError(413, 'BODY_TOO_LARGE', `the body is over ${this.cfg.maxBodyBytes} bytes`));
          return;
        }
        chunks.push(Buffer.from(chunk.slice(0)));
        if (!isLast) return;
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown;
        try {
          body = text ? JSON.parse(text) : undefined;
        } catch (e) {
          fail(new ApiError(400, 'BAD_JSON', `the body is not JSON: ${(e as Error).message}`));
          return;
        }
        void run(body);
      });
    });
  }

  /** Anything no route matched: 405 (with Allow) for a known path asked with another method, else 404. */
  notFound(): void {
    const shape = (pattern: string) => pattern.replace(/:[^/]+/g, '[^/]+');
    const paths = this.routes.map((r) => ({ method: r.method.toUpperCase(), path: new RegExp(`^${shape(r.pattern)}/?$`) }));
    // Routes whose last step is a fixed word, by the path before it.
    const siblings = this.routes
      .map((r) => ({
        method: r.method.toUpperCase(),
        parent: r.pattern.slice(0, r.pattern.lastIndexOf('/')),
        last: r.pattern.slice(r.pattern.lastIndexOf('/') + 1),
      }))
      .filter((r) => r.parent !== '' && !r.last.startsWith(':'))
      .map((r) => ({ ...r, parent: new RegExp(`^${shape(r.parent)}$`) }));
    this.app.any('/*', (res, req) => {
      const url = req.getUrl();
      const method = req.getMethod().toUpperCase();
      const allow = [...new Set(paths.filter((p) => p.path.test(url)).map((p) => p.method))];
      res.cork(() => {
        if (allow.length > 0 && !allow.includes(method)) {
          res
            .writeStatus('405 Method Not Allowed')
            .writeHeader('allow', allow.join(', '))
            .writeHeader('content-type', 'application/json')
            .end(JSON.stringify({ error: { code: 'METHOD_NOT_ALLOWED', message: `${method} ${url}: this path takes ${allow.join(' or ')}` } }));
          return;
        }
        // A known path with an unknown last step (an alarm action misspelt): name the steps it takes.
        const slash = url.replace(/\/$/, '').lastIndexOf('/');
        const parent = url.slice(0, slash);
        const steps = [...new Set(siblings.filter((r) => r.method === method && r.parent.test(parent)).map((r) => r.last))];
        const message =
          steps.length > 0 ? `${method} ${url}: no such route; after ${parent} this path takes ${steps.join(', ')}` : `${method} ${url}: no such route`;
        res
          .writeStatus('404 Not Found')
          .writeHeader('content-type', 'application/json')
          .end(JSON.stringify({ error: { code: 'NOT_FOUND', message } }));
      });
    });
  }

  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.app.listen(this.cfg.host, this.cfg.port, (socket) => {
        if (!socket) {
          reject(new VoltageError('api', 'LISTEN', `cannot listen on ${this.cfg.host}:${this.cfg.port} (in use?)`));
          return;
        }
        this.listenSocket = socket;
        resolve(uWS.us_socket_local_port(socket as unknown as uWS.us_socket));
      });
    });
  }

  close(): void {
    if (this.listenSocket) uWS.us_listen_socket_close(this.listenSocket);
    this.listenSocket = undefined;
  }
}
