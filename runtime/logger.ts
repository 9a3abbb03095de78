/**
 * pino, JSON by default and pretty in a terminal. Actors get child loggers
 * (`logger.child({ actor: 'channel/1001' })`); nothing on the per-point path
 * builds strings for the log. Errors are logged as objects under `err`
 * (`log.error({ err }, msg)`): the serializer keeps their type, stack, cause
 * and a VoltageError's `code`, `kind` and `context`.
 */
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(level: string = process.env.LOG_LEVEL ?? 'info'): Logger {
  const pretty = process.stdout.isTTY && process.env.LOG_FORMAT !== 'json';
  return pino({
    level,
    base: { pid: process.pid },
    serializers: { err: pino.stdSerializers.err },
    ...(pretty ? { transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname' } } } : {}),
  });
}
