/**
 * Opens the Redis connection. Unreachable at start: retry with backoff and
 * say so, never crash-loop silently. Gone later: ioredis reconnects with the
 * same policy while commands wait in its queue (maxRetriesPerRequest: null),
 * so nothing accepted is dropped.
 *
 * Back soon after it returns: the site's Redis is on the same box, so an
 * attempt costs next to nothing, and the wait after Redis is back is the last
 * delay. The delays stop growing at 1 s (they did at 5 s: a Redis back after
 * 3.2 s was seen 3 s later). A Redis that restarts on its AOF accepts
 * connections while it loads; ioredis then asks again after Redis's own
 * estimate of the loading time (at least 1 s, up to 10 s, often far too long:
 * a 100 MB AOF loaded in 1.3 s, the client was ready after 10.3 s); here it
 * asks every 100 ms.
 */
import { Redis } from 'ioredis';
import { backoffDelay, type BackoffPolicy } from '../backoff.js';
import { REDIS_ERROR_CODES, RedisError } from '../errors.js';
import type { Logger } from '../logger.js';

export const redisBackoff: BackoffPolicy = { minBackoffMs: 100, maxBackoffMs: 1_000, randomFactor: 0.2, resetBackoffAfterMs: 0 };
/** How often a connection asks a Redis that is loading its data whether it is done. */
export const REDIS_LOADING_CHECK_MS = 100;
/** Every attempt is logged until the delay reaches its bound, then every this many (one line in ~10 s). */
const LOG_EVERY_ATTEMPTS = 10;

/** Whether reconnection attempt `times` (1-based) is logged: the first ones, then one in LOG_EVERY_ATTEMPTS. */
export function logsAttempt(times: number): boolean {
  const growing = times === 1 || backoffDelay(redisBackoff, times - 2, 0) < redisBackoff.maxBackoffMs;
  return growing || times % LOG_EVERY_ATTEMPTS === 0;
}

export function redactUrl(url: string): string {
  return url.replace(/\/\/([^@/]*)@/, '//***@');
}

/**
 * `failFast`: while Redis is unreachable, a command fails at once (REDIS_UNAVAILABLE)
 * instead of waiting in the queue: for the gateway, whose requests must answer
 * within their deadline; the runtime's writers wait, so that nothing accepted is lost.
 */
export function openRedis(url: string, log: Logger, name = 'main', opts: { readonly failFast?: boolean } = {}): Redis {
  const where = redactUrl(url);
  const redis = new Redis(url, {
    connectionName: `voltage:${name}`,
    maxRetriesPerRequest: null,
    enableOfflineQueue: !opts.failFast,
    // Auto-pipelining was measured: no gain in throughput and a worse latency tail here.
    enableAutoPipelining: false,
    maxLoadingRetryTime: REDIS_LOADING_CHECK_MS,
    retryStrategy: (times) => {
      const delayMs = backoffDelay(redisBackoff, times - 1);
      if (logsAttempt(times))
        log.warn(
          { redis: where, attempt: times, delayMs },
          `Redis at ${where} is unreachable; retrying in ${delayMs} ms (attempt ${times}${times >= LOG_EVERY_ATTEMPTS ? `; said every ${LOG_EVERY_ATTEMPTS} attempts` : ''})`,
        );
      return delayMs;
    },
  });
  let wasReady = false;
  redis.on('error', (err: Error) => log.debug({ redis: where, err }, 'redis connection error'));
  redis.on('ready', () => {
    if (wasReady) log.info({ redis: where }, `Redis at ${where} is back`);
    wasReady = true;
  });
  return redis;
}

export function whenReady(redis: Redis): Promise<void> {
  if (redis.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const onReady = () => {
      redis.off('end', onEnd);
      resolve();
    };
    const onEnd = () => {
      redis.off('ready', onReady);
      reject(new RedisError(REDIS_ERROR_CODES.command, 'Redis connection closed before it was ready'));
    };
    redis.once('ready', onReady);
    redis.once('end', onEnd);
  });
}

/** Settles with the promise, or with undefined after `ms` (the promise is left to itself). */
export async function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<undefined>((resolve) => {
        timer = setTimeout(() => resolve(undefined), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** whenReady, or an error saying Redis did not answer within `ms`. */
export async function readyWithin(redis: Redis, url: string, ms: number): Promise<void> {
  if (
    (await within(
      whenReady(redis).then(() => true),
      ms,
    )) !== true
  ) {
    throw new RedisError(REDIS_ERROR_CODES.timeout, `Redis at ${redactUrl(url)} did not answer within ${Math.round(ms / 1000)} s`, { redis: redactUrl(url) });
  }
}

/**
 * Closes a connection: QUIT when Redis answers (what was sent before is written
 * first), otherwise at once. Never waits on a Redis that is gone: the commands
 * still queued then are not sent.
 */
export async function closeRedis(redis: Redis, ms = 2_000): Promise<void> {
  if (redis.status === 'ready') {
    const quit = redis.quit().then(
      () => true,
      () => false,
    );
    if (await within(quit, ms)) return;
  }
  redis.disconnect();
}
