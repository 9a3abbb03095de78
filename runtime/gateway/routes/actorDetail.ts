/**
 * One actor, for the visualizer:
 *   GET /api/v1/actors/{id}              its entry in the tree (status, state, restarts, backoff)
 *   GET /api/v1/actors/{id}/machine      its machine as a graph, laid out (runtime/machineGraph.ts)
 *   GET /api/v1/actors/{id}/transitions  its last transitions, newest first (?count=, at most 200)
 * and the WebSocket topics `actor/{id}`: the entry again whenever the runtime
 * reports a change (`actor:update`), coalesced over a short window.
 */
import { ApiError, type Http } from '../http.js';
import { TRANSITIONS_MAXLEN } from '../../redis/actors.js';
import { KEYS } from '../../redis/keys.js';
import type { Subscriptions } from '../../redis/subscriptions.js';
import type { VoltageRedis } from '../../redis/voltageRedis.js';
import { reportRejection } from '../../reporter.js';
import { activeStates } from '../../machineGraph.js';
import { MachineLayouts } from '../../machineLayouts.js';
import type { TelemetryFeed } from '../ws.js';

/** A change reaches subscribers within this window (the page's budget is 1 s). */
const ACTOR_FEED_MS = 50;

export interface ActorView {
  readonly id: string;
  readonly kind: string | null;
  readonly parent: string | null;
  readonly status: string | null;
  readonly state: unknown;
  readonly context: unknown;
  readonly restarts: number;
  readonly nextBackoffMs: number;
  readonly backoffUntil: number;
  readonly lastError: string | null;
  readonly order: number;
  /** The ids of the machine's states it is in ('' the root), as the machine graph names them. */
  readonly active: readonly string[];
}

export function actorView(a: Readonly<Record<string, string>>): ActorView {
  const state = a.state ? (JSON.parse(a.state) as unknown) : null;
  return {
    id: a.id!,
    kind: a.kind ?? null,
    parent: a.parent || null,
    status: a.status ?? null,
    state,
    active: state === null || state === '' ? [] : activeStates(state),
    context: a.context ? (JSON.parse(a.context) as unknown) : null,
    restarts: Number(a.restarts ?? 0),
    nextBackoffMs: Number(a.nextBackoffMs ?? 0),
    backoffUntil: Number(a.backoffUntil ?? 0),
    lastError: a.lastError || null,
    order: Number(a.order ?? 0),
  };
}

/** Registers the routes and the `actor/*` topics; returns what stops the feed. */
export async function actorDetailRoutes(http: Http, redis: VoltageRedis, subs: Subscriptions, feed: TelemetryFeed): Promise<() => Promise<void>> {
  const one = async (id: string): Promise<ActorView> => {
    const [a] = await redis.actors.records([id]);
    if (!a?.kind && !a?.status) throw new ApiError(404, 'NOT_FOUND', `no actor '${id}'`);
    return actorView(a);
  };
  // The uWS router matches one segment per parameter: actor ids ('channel/1001') have a slash.
  const idOf = (params: readonly string[]) => params.filter((p) => p !== '').join('/');
  for (const pattern of ['/api/v1/actors/:id', '/api/v1/actors/:kind/:id']) {
    http.route('get', pattern, 'viewer', async ({ params }) => ({ status: 200, body: await one(idOf(params)) }));
  }
  // The build's layouts (runtime/machineLayouts.ts); a kind whose machine changed since is laid out once on demand.
  const layouts = new MachineLayouts();
  for (const pattern of ['/api/v1/actors/:id/machine', '/api/v1/actors/:kind/:id/machine']) {
    http.route('get', pattern, 'viewer', async ({ params }) => {
      const a = await one(idOf(params));
      const g = a.kind ? layouts.of(a.kind) : undefined;
      if (!g) throw new ApiError(404, 'NOT_FOUND', `'${a.id}' is a ${a.kind ?? 'node'} and runs no machine`);
      return { status: 200, body: { actor: a.id, state: a.state, graph: await g } };
    });
  }
  for (const pattern of ['/api/v1/actors/:id/transitions', '/api/v1/actors/:kind/:id/transitions']) {
    http.route('get', pattern, 'viewer', async ({ params, query }) => {
      const a = await one(idOf(params));
      const count = Math.min(TRANSITIONS_MAXLEN, Math.max(1, Number(query.get('count') ?? 50) || 50));
      // The journal keeps state values as JSON text; the API answers them as values ("polling", {"ready": "idle"}; null when not known).
      const transitions = (await redis.actors.transitions(a.id, count)).map((t) => ({ ...t, from: stateValue(t.from), to: stateValue(t.to) }));
      return { status: 200, body: { actor: a.id, transitions } };
    });
  }

  let ids = new Set<string>((await redis.actors.list()).map((a) => a.id));
  const message = (a: ActorView, snapshot = false) => JSON.stringify({ topic: `actor/${a.id}`, ts: Date.now(), ...(snapshot ? { snapshot } : {}), actor: a });
  feed.addSource({
    topics: () => [...ids].map((id) => `actor/${id}`),
    owns: (topic) => topic.startsWith('actor/'),
    snapshot: async (topic) => message(await one(topic.slice('actor/'.length)), true),
  });
  const dirty = new Set<string>();
  let timer: NodeJS.Timeout | undefined;
  const flush = async () => {
    timer = undefined;
    const batch = [...dirty];
    dirty.clear();
    for (const a of await redis.actors.records(batch)) {
      if (http.app.numSubscribers(`actor/${a.id}`) > 0) http.app.publish(`actor/${a.id}`, message(actorView(a)));
    }
  };
  return subs
    .on(KEYS.actorUpdate, (id) => {
      ids.add(id);
      dirty.add(id);
      timer ??= setTimeout(() => reportRejection(flush(), { source: 'actor feed' }), ACTOR_FEED_MS);
    })
    .then((unsubscribe) => async () => {
      if (timer) clearTimeout(timer);
      ids = new Set();
      await unsubscribe();
    });
}

/** A journal's state value (JSON text) as a value; null when not known (text that is not JSON as it is). */
function stateValue(json: string): unknown {
  if (json === '') return null;
  try {
    return JSON.parse(json) as unknown;
  } catch {
    return json;
  }
}
