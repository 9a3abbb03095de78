/**
 * The gateway as a supervised actor: gatewayMachine bound to one uWS server
 * with the REST routes. It reads and writes Redis through the wrapper only, like
 * every other actor; commands go through m2c.
 */
import { fromPromise } from 'xstate';
import { gatewayMachine } from '../../machines/gatewayMachine.js';
import { machineChild } from '../actorHost.js';
import type { GatewayConfig, Role } from '../config/schema.js';
import type { Subscriptions, VoltageRedis } from '../redis/functions.js';
import { VoltageError } from '../errors.js';
import { TelemetryFeed } from './ws.js';
import { openApiDocument } from './openapi.js';
import type { ActorRegistry } from '../registry.js';
import type { ChildSpec } from '../supervisor.js';
import { Http } from './http.js';
import { actorRoutes } from './routes/actors.js';
import { channelRoutes } from './routes/channels.js';
import { commandRoutes } from './routes/commands.js';
import { healthRoutes } from './routes/health.js';
import { metricsRoutes } from './routes/metrics.js';
import { modelRoutes } from './routes/models.js';

export interface GatewayDeps {
  readonly redis: VoltageRedis;
  readonly subscriptions: Subscriptions;
  readonly registry: ActorRegistry;
  /** Tokens given at start (the demo makes one per role); config tokens are hashes. */
  readonly extraTokens?: ReadonlyArray<{ name: string; role: Role; token: string }>;
  /** Told the port once the server listens (port 0 in config: any free port). */
  readonly onListening?: (port: number) => void;
}

export function gatewayChild(cfg: GatewayConfig, deps: GatewayDeps): ChildSpec {
  return machineChild({
    id: 'gateway',
    registry: deps.registry,
    async build() {
      const http = new Http(cfg, deps.extraTokens);
      // The site is read once: it changes only with a new start, which restarts the gateway too.
      const site = await deps.redis.siteDescription();
      if (!site) throw new VoltageError('api', 'NO_SITE', 'no site is loaded in Redis');
      const feed = new TelemetryFeed(http, deps.redis, deps.subscriptions, cfg.ws, site);
      healthRoutes(http, deps.redis, deps.registry);
      channelRoutes(http, deps.redis, site);
      modelRoutes(http, deps.redis, site, cfg.commandTimeoutMs, feed.cache);
      commandRoutes(http, deps.redis);
      actorRoutes(http, deps.redis);
      metricsRoutes(http, deps.redis, feed);
      await feed.start();
      http.route('get', '/api/v1/openapi.json', 'public', async () => ({ status: 200, body: openApiDocument() }));
      http.notFound();
      const machine = gatewayMachine.provide({
        actors: {
          listen: fromPromise(async () => {
            const port = await http.listen();
            deps.onListening?.(port);
            return port;
          }),
        },
      });
      return {
        machine,
        input: undefined as never,
        dispose: async () => {
          await feed.stop();
          http.close();
        },
      };
    },
  });
}
