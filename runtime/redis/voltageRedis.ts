/**
 * The one typed wrapper around Redis for the whole runtime, composed of one
 * part per domain over one shared core:
 *   redis.telemetry  c2m, model values, outbox statistics
 *   redis.commands   m2c, a channel's command stream, cmd_result, the audit
 *   redis.actors     actor reports and the list `voltage status` prints
 *   redis.site       the site's mapping and description, the library version
 *   redis.alarms     alarm_init, alarm_commit, the alarm list, events and indicators
 *   redis.rules      rule state (compare-and-set), counters, the executions journal
 *   redis.outbox     the outbox as its consumers read it: groups, XREADGROUP, ranges, XACK
 *   redis.history    a history writer's keep state and tier marks
 *   redis.cloud      a cloud link's seqs, state, counters, refused ranges and parked refusals
 * plus pub/sub (subscriber) and the connection. Nothing else holds an ioredis
 * client; only the core (core.ts) knows the Functions' argument order.
 * A new domain (alarms, rules, history, cloud) is one more module and one more field.
 */
import type { Redis } from 'ioredis';
import { pino } from 'pino';
import type { Logger } from '../logger.js';
import { ActorsRedis } from './actors.js';
import { AlarmsRedis } from './alarms.js';
import { CommandsRedis } from './commands.js';
import { CloudRedis } from './cloud.js';
import { closeRedis } from './connect.js';
import { RedisCore, redisCall } from './core.js';
import { HistoryRedis } from './history.js';
import { OutboxRedis } from './outbox.js';
import { RulesRedis } from './rules.js';
import { SiteRedis } from './site.js';
import { Subscriptions } from './subscriptions.js';
import { TelemetryRedis, type OutboxLimits } from './telemetry.js';

export interface VoltageRedisOptions {
  /** Where errors that are not thrown at a caller go (the subscriber connection's); silent without one. */
  readonly log?: Logger;
}

export class VoltageRedis {
  readonly core: RedisCore;
  readonly telemetry: TelemetryRedis;
  readonly commands: CommandsRedis;
  readonly actors: ActorsRedis;
  readonly site: SiteRedis;
  readonly alarms: AlarmsRedis;
  readonly rules: RulesRedis;
  readonly outbox: OutboxRedis;
  readonly history: HistoryRedis;
  readonly cloud: CloudRedis;
  private readonly log: Logger;

  constructor(
    client: Redis,
    private readonly limits: OutboxLimits,
    private readonly options: VoltageRedisOptions = {},
  ) {
    this.core = RedisCore.of(client);
    this.telemetry = new TelemetryRedis(this.core, limits, options.log);
    this.commands = new CommandsRedis(this.core, limits);
    this.actors = new ActorsRedis(this.core);
    this.site = new SiteRedis(this.core, options.log);
    this.alarms = new AlarmsRedis(this.core, limits);
    this.rules = new RulesRedis(this.core, limits, this.commands);
    this.outbox = new OutboxRedis(this.core);
    this.history = new HistoryRedis(this.core);
    this.cloud = new CloudRedis(this.core);
    this.log = options.log ?? pino({ level: 'silent' });
  }

  /**
   * The same surface on another connection, opened by the caller (who ends it): for a consumer that blocks in
   * XREADGROUP and so holds its connection while it waits (a history writer, a cloud link). The limits and the log are this one's.
   */
  onConnection(client: Redis): VoltageRedis {
    return new VoltageRedis(client, this.limits, this.options);
  }

  async ping(): Promise<void> {
    await redisCall('PING', () => this.core.client.ping());
  }

  /** A pub/sub hub on its own connection (a subscribed connection can do nothing else). */
  subscriber(): Subscriptions {
    // Subscriptions wait for the connection (they are made again after a reconnect) even where commands fail fast.
    const client = this.core.client;
    return new Subscriptions(client.duplicate({ connectionName: 'voltage:sub', enableOfflineQueue: true }), this.log, client);
  }

  async close(): Promise<void> {
    await closeRedis(this.core.client);
  }
}
