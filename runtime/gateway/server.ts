/**
 * The gateway's server: one uWS app with the REST routes and the WebSocket
 * feed, on its own Redis connections. It runs in the gateway's own process
 * (runtime/gateway/child.ts), so that neither the site's work nor its garbage
 * collection delays a request, and a request flood does not delay a poll.
 * What only the runtime knows (its actors' statuses, its Prometheus metrics)
 * comes from the `host`.
 */
import type { GatewayConfig, Role } from '../config/schema.js';
import type { Subscriptions } from '../redis/subscriptions.js';
import type { VoltageRedis } from '../redis/voltageRedis.js';
import { VoltageError } from '../errors.js';
import { TelemetryFeed } from './ws.js';
import { openApiDocument, undocumentedRoutes } from './openapi.js';
import { Http } from './http.js';
import { actorRoutes } from './routes/actors.js';
import { actorDetailRoutes } from './routes/actorDetail.js';
import { alarmRoutes } from './routes/alarms.js';
import { meRoutes } from './routes/me.js';
import { staticRoutes } from './static.js';
import { channelRoutes } from './routes/channels.js';
import { cloudRoutes } from './routes/cloud.js';
import { commandRoutes } from './routes/commands.js';
import { healthRoutes } from './routes/health.js';
import { metricsRoutes } from './routes/metrics.js';
import { modelRoutes } from './routes/models.js';
import { historyRoutes } from './routes/history.js';
import { HistoryQueries, type HistoryQueryOptions } from '../../actors/history/query.js';
import { ruleFeed } from './routes/ruleFeed.js';
import { ruleRoutes } from './routes/rules.js';
import { settled, startAll } from '../reporter.js';

export interface GatewayHost {
  /** The runtime's actors counted by status. */
  statusCounts(): Readonly<Record<string, number>>;
  /** The runtime's Prometheus text. */
  metrics(): Promise<string>;
}

export interface GatewayServer {
  readonly port: number;
  /** Settles once the feed has read the site's values (it listens before); rejects if that failed. */
  readonly ready: Promise<void>;
  stop(): Promise<void>;
}

export async function startGatewayServer(
  cfg: GatewayConfig,
  redis: VoltageRedis,
  subscriptions: Subscriptions,
  host: GatewayHost,
  extraTokens: ReadonlyArray<{ name: string; role: Role; token: string }> = [],
  /** The history database that queries go to (none: the history routes answer 503). */
  history?: HistoryQueryOptions,
): Promise<GatewayServer> {
  const http = new Http(cfg, extraTokens);
  // The site is read once: it changes only with a new start, which restarts the gateway too.
  const site = await redis.site.description();
  if (!site) throw new VoltageError('api', 'NO_SITE', 'no site is loaded in Redis');
  const feed = new TelemetryFeed(http, redis, subscriptions, cfg.ws, site);
  healthRoutes(http, redis, host);
  channelRoutes(http, redis, site);
  modelRoutes(http, redis, site, cfg.commandTimeoutMs, feed.cache);
  commandRoutes(http, redis);
  ruleRoutes(http, redis);
  cloudRoutes(http, redis);
  actorRoutes(http, redis);
  meRoutes(http);
  // Their reads and subscriptions in flight together: each is a round trip behind the site's writes.
  const feeds = await startAll(
    [actorDetailRoutes(http, redis, subscriptions, feed), alarmRoutes(http, redis, subscriptions, feed), ruleFeed(http, redis, subscriptions, feed)],
    { source: 'gateway stop' },
  );
  const stopFeeds = async () => {
    for (const stop of feeds) await stop();
    await feed.stop();
  };
  let port: number;
  try {
    staticRoutes(http.app);
    metricsRoutes(http, redis, feed, host);
    historyRoutes(http, history ? new HistoryQueries(history) : undefined);
    feed.start();
    const doc = openApiDocument();
    http.route('get', '/api/v1/openapi.json', 'public', async () => ({ status: 200, body: doc }));
    http.notFound();
    // A route missing from the document is a bug found by the first test that starts a gateway.
    const undocumented = undocumentedRoutes(http.routes, doc);
    if (undocumented.length) {
      throw new VoltageError('api', 'UNDOCUMENTED_ROUTE', `route(s) not in the OpenAPI document (runtime/gateway/openapi.ts): ${undocumented.join(', ')}`);
    }
    port = await http.listen();
  } catch (e) {
    // Whatever failed after the feeds started (the telemetry feed's start included): they stop, or their
    // subscriptions and timers outlive a gateway that never served. A failing stop is reported, not thrown
    // over the start's own error.
    await settled(stopFeeds(), { source: 'gateway stop after a failed start' });
    http.close();
    throw e;
  }
  return {
    port,
    ready: feed.ready,
    async stop() {
      await stopFeeds();
      http.close();
    },
  };
}
