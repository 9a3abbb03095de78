/**
 * The one error family of VoltageEMS. Every error that leaves a module is a
 * VoltageError with a stable `code`, a sentence a person can act on, and the
 * context (file:line:column, channel, point) it happened in.
 * Never throw a bare Error across a module boundary.
 */
export type ErrorKind = 'config' | 'device' | 'redis' | 'api' | 'runtime';

export interface ErrorContext {
  readonly [key: string]: string | number | boolean | undefined;
}

export class VoltageError extends Error {
  readonly kind: ErrorKind;
  readonly code: string;
  readonly context: ErrorContext;

  constructor(kind: ErrorKind, code: string, message: string, context: ErrorContext = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'VoltageError';
    this.kind = kind;
    this.code = code;
    this.context = context;
  }
}

/** A position in a config file, 1-based as editors show it. */
export interface SourcePosition {
  readonly file: string;
  readonly line: number;
  readonly column: number;
}

/** One problem found in a config folder. `voltage validate` prints a list of these. */
export interface ConfigIssue extends SourcePosition {
  readonly code: string;
  readonly message: string;
}

export function formatIssue(i: ConfigIssue): string {
  return `${i.file}:${i.line}:${i.column}: ${i.message} [${i.code}]`;
}

export class ConfigError extends VoltageError {
  readonly issues: readonly ConfigIssue[];
  constructor(issues: readonly ConfigIssue[]) {
    super('config', 'CONFIG_INVALID', `config has ${issues.length} problem(s):\n${issues.map(formatIssue).join('\n')}`);
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

// DeviceError, raised by a channel's device, lives beside the device interface (actors/channel/device.ts).

/**
 * What went wrong talking to Redis, as a stable code. runtime/redis/core.ts is
 * the one place that maps a Redis reply or an ioredis failure to one of these.
 */
export const REDIS_ERROR_CODES = {
  /** A Function refused the call (its own validation, `EVOLTAGE …`) or failed in Lua. */
  function: 'REDIS_FUNCTION',
  /** The library is not loaded (Redis restarted without persistence, or FUNCTION FLUSH). */
  functionMissing: 'REDIS_FUNCTION_MISSING',
  /** XGROUP CREATE of a group that exists already. */
  busyGroup: 'REDIS_BUSYGROUP',
  /** A read or acknowledgement on a consumer group (or stream) that does not exist. */
  noGroup: 'REDIS_NOGROUP',
  /** Redis did not answer in time. */
  timeout: 'REDIS_TIMEOUT',
  /** Redis is not connected, and this connection does not queue (the gateway's): the call was not sent. */
  unavailable: 'REDIS_UNAVAILABLE',
  /** Any other error reply or connection failure. */
  command: 'REDIS_COMMAND',
} as const;

export type RedisErrorCode = (typeof REDIS_ERROR_CODES)[keyof typeof REDIS_ERROR_CODES];

export class RedisError extends VoltageError {
  declare readonly code: RedisErrorCode;
  constructor(code: RedisErrorCode, message: string, context: ErrorContext = {}, options?: { cause?: unknown }) {
    super('redis', code, message, context, options);
    this.name = 'RedisError';
  }
}

/** A Function refused the call or failed: the message says why, prefixed with the Function's name. */
export class RedisFunctionError extends RedisError {
  constructor(fn: string, message: string, options?: { cause?: unknown }) {
    super(REDIS_ERROR_CODES.function, `${fn}: ${message}`, { function: fn }, options);
    this.name = 'RedisFunctionError';
  }
}

export function isRedisError(e: unknown, code: RedisErrorCode): e is RedisError {
  return e instanceof RedisError && e.code === code;
}

export function errorMessage(e: unknown): string {
  if (e instanceof Error) return e.message;
  const m = (e as { message?: unknown } | null)?.message;
  return typeof m === 'string' ? m : String(e);
}
