/**
 * One subscriber connection shared by every actor of the process; handlers by
 * channel or pattern. A subscribed connection can do nothing else, so it is
 * its own connection. Its errors go to the logger it was given, never nowhere.
 */
import type { Redis } from 'ioredis';
import type { Logger } from '../logger.js';
import { closeRedis } from './connect.js';
import { toRedisError } from './core.js';
import { TRACE_KINDS, headTs, trace, traceName, traceNow, tracing } from '../trace.js';

export type MessageHandler = (message: string, channel: string) => void;

export class Subscriptions {
  private readonly conn: Redis;
  private readonly log: Logger;
  /** The connection the reconnect listeners read with (the process's commands connection). */
  private readonly commands: Redis | undefined;
  private readonly handlers = new Map<string, Set<MessageHandler>>();
  private readonly patternHandlers = new Map<string, Set<MessageHandler>>();
  /** The SUBSCRIBE or PSUBSCRIBE in flight for a handler set: a second handler is added once it is confirmed. */
  private readonly confirming = new WeakMap<Set<MessageHandler>, Promise<unknown>>();

  constructor(conn: Redis, log: Logger, commands?: Redis) {
    this.conn = conn;
    this.log = log;
    this.commands = commands;
    // Connection errors are retried by ioredis (and subscriptions renewed); logged at debug like the main connection's.
    this.conn.on('error', (err: Error) => this.log.debug({ err }, 'redis subscriber connection error'));
    this.conn.on('message', (channel: string, message: string) => {
      if (tracing) trace(TRACE_KINDS.note, traceNow(), headTs(message), traceName(channel));
      const hs = this.handlers.get(channel);
      if (hs) for (const h of hs) h(message, channel);
    });
    this.conn.on('pmessage', (pattern: string, channel: string, message: string) => {
      if (tracing) trace(TRACE_KINDS.note, traceNow(), headTs(message), traceName(channel));
      const hs = this.patternHandlers.get(pattern);
      if (hs) for (const h of hs) h(message, channel);
    });
  }

  private readonly reconnectListeners = new Set<() => void>();
  private readyBefore = false;
  private watchingReady = false;

  /**
   * Called each time the connection is ready again after a loss (ioredis renews the
   * subscriptions itself), and the commands connection is ready too: a listener reads
   * what it missed with that one, which may reconnect later than this one and fail
   * fast until then (the gateway's). Returns what removes the listener: an actor that
   * stops must not leave one behind (one connection serves every actor of the process).
   */
  onReconnect(listener: () => void): () => void {
    if (!this.watchingReady) {
      this.watchingReady = true;
      this.readyBefore = this.conn.status === 'ready';
      let waiting = false;
      this.conn.on('ready', () => {
        const before = this.readyBefore;
        this.readyBefore = true;
        if (!before || waiting) return;
        const tell = () => {
          waiting = false;
          for (const l of this.reconnectListeners) l();
        };
        const commands = this.commands;
        if (!commands || commands.status === 'ready') return tell();
        waiting = true;
        commands.once('ready', tell);
      });
    }
    this.reconnectListeners.add(listener);
    return () => {
      this.reconnectListeners.delete(listener);
    };
  }

  /** Resolves once Redis confirms the subscription; returns the unsubscribe function. */
  on(channel: string, handler: MessageHandler): Promise<() => Promise<void>> {
    return this.add(
      this.handlers,
      channel,
      handler,
      (c) => this.conn.subscribe(c),
      (c) => this.conn.unsubscribe(c),
    );
  }

  /** A pattern subscription (PSUBSCRIBE); the handler gets the message and the channel it came on. */
  onPattern(pattern: string, handler: MessageHandler): Promise<() => Promise<void>> {
    return this.add(
      this.patternHandlers,
      pattern,
      handler,
      (p) => this.conn.psubscribe(p),
      (p) => this.conn.punsubscribe(p),
    );
  }

  /**
   * Redis subscribes once per channel or pattern, however many handlers share it. A handler that
   * joined a SUBSCRIBE in flight which then failed tries once itself (`retried`): that failure was
   * the other's attempt, made before this one came (a refusal since lifted, a connection since back).
   */
  private async add(
    map: Map<string, Set<MessageHandler>>,
    key: string,
    handler: MessageHandler,
    subscribe: (key: string) => Promise<unknown>,
    unsubscribe: (key: string) => Promise<unknown>,
    retried = false,
  ): Promise<() => Promise<void>> {
    let hs = map.get(key);
    if (!hs) {
      const fresh = new Set<MessageHandler>();
      hs = fresh;
      map.set(key, fresh);
      const confirmed = subscribe(key);
      this.confirming.set(fresh, confirmed);
      try {
        await confirmed;
      } catch (e) {
        // Refused or cut off: forgotten, so that the next handler for this key subscribes again.
        if (map.get(key) === fresh && fresh.size === 0) map.delete(key);
        throw e;
      } finally {
        this.confirming.delete(fresh);
      }
    } else {
      try {
        await this.confirming.get(hs);
      } catch (e) {
        if (retried) throw e;
        if (map.get(key) === hs && hs.size === 0) map.delete(key);
        return this.add(map, key, handler, subscribe, unsubscribe, true);
      }
    }
    hs.add(handler);
    return async () => {
      const set = map.get(key);
      if (!set) return;
      set.delete(handler);
      if (set.size === 0) {
        map.delete(key);
        // Unsubscribing is best effort (the connection may drop meanwhile): a failure is logged, not thrown at the caller.
        if (this.conn.status === 'ready') {
          await unsubscribe(key).catch((e: unknown) =>
            this.log.warn({ err: toRedisError(e, 'UNSUBSCRIBE'), channel: key }, `could not unsubscribe from ${key}`),
          );
        }
      }
    };
  }

  async close(): Promise<void> {
    await closeRedis(this.conn);
  }
}
