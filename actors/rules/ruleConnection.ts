/**
 * The rule actors' own Redis connection, one per process, shared by every rule
 * actor: opened when the first starts, closed when the last stops. On the
 * runtime's main connection a rule's commit (and the command it sends) waited
 * behind the channels' `c2m` calls written before it, tens of ms at 100k
 * points/s: Redis answers a connection's calls in order, and so does ioredis.
 * On a connection of their own, the rules' calls are served between them.
 * Subscriptions stay on the process's one subscriber connection.
 */
import type { OutboxLimits } from '../../runtime/redis/telemetry.js';
import { openRedis } from '../../runtime/redis/connect.js';
import { VoltageRedis } from '../../runtime/redis/voltageRedis.js';
import type { Logger } from '../../runtime/logger.js';

export class RuleConnection {
  private users = 0;
  private redis: VoltageRedis | undefined;

  constructor(private readonly open: () => VoltageRedis) {}

  static of(redisUrl: string, limits: OutboxLimits, log: Logger): RuleConnection {
    return new RuleConnection(() => new VoltageRedis(openRedis(redisUrl, log, 'rules'), limits, { log }));
  }

  /** The connection, opened if no rule actor holds it; each acquire is matched by one release. */
  acquire(): VoltageRedis {
    this.redis ??= this.open();
    this.users++;
    return this.redis;
  }

  async release(): Promise<void> {
    if (--this.users > 0) return;
    const r = this.redis;
    this.redis = undefined;
    await r?.close();
  }
}
