/**
 * The history writer as a supervised actor: historyMachine bound to a
 * HistoryWriter (HistoryWriter.ts), on a Redis connection of its own, one per
 * configured backend. runtime/kinds.ts lists the kind (the lead wires it).
 */
import { fromPromise } from 'xstate';
import { historyMachine } from '../../machines/historyMachine.js';
import { machineChild } from '../../runtime/actorHost.js';
import { backoffDelay, type BackoffPolicy } from '../../runtime/backoff.js';
import type { Logger } from '../../runtime/logger.js';
import { openRedis } from '../../runtime/redis/connect.js';
import type { ActorRegistry } from '../../runtime/registry.js';
import type { ChildSpec } from '../../runtime/supervisor.js';
import { HistoryWriter, type HistoryWriterOptions } from './HistoryWriter.js';

const defaultPolicy: BackoffPolicy = { minBackoffMs: 200, maxBackoffMs: 5_000, randomFactor: 0.2, resetBackoffAfterMs: 0 };

/** historyMachine bound to a writer: what historyChild runs, and what tests run without a supervisor. */
export function provideHistoryMachine(writer: HistoryWriter, policy: BackoffPolicy, log: Logger) {
  return historyMachine.provide({
    actors: {
      connect: fromPromise(() => writer.connect()),
      rewriteWindow: fromPromise(() => writer.rewriteWindow()),
      writeBatch: fromPromise(({ input }) => writer.writeBatch(input.mode)),
    },
    delays: {
      retryDelay: ({ context }) => {
        const ms = backoffDelay(policy, context.attempts - 1);
        log.warn({ attempt: context.attempts, delayMs: ms, err: context.lastError }, `history: retrying in ${ms} ms`);
        return ms;
      },
    },
  });
}

export interface HistoryActorDeps {
  /** The writer opens a connection of its own: XREADGROUP BLOCK holds a connection while it waits. */
  readonly redisUrl: string;
  readonly registry: ActorRegistry;
  readonly log: Logger;
}

export function historyActorId(backend: string): string {
  return `history/${backend}`;
}

/** One writer per backend, as a supervised child (the lead adds the kind to runtime/kinds.ts). */
export function historyChild(opts: HistoryWriterOptions, deps: HistoryActorDeps): ChildSpec {
  const id = historyActorId(opts.backend);
  const policy = opts.backoff ?? defaultPolicy;
  return machineChild({
    id,
    registry: deps.registry,
    summarize: (c) => ({ batches: c.batches, entries: c.entries, samples: c.samples, skipped: c.skipped, failures: c.failures, rewrites: c.rewrites, lastError: c.lastError }),
    async build() {
      const log = deps.log.child({ actor: id });
      const redis = openRedis(deps.redisUrl, log, id);
      const writer = new HistoryWriter(redis, opts, log);
      const machine = provideHistoryMachine(writer, policy, log);
      return { machine, input: { backend: opts.backend }, dispose: async () => {
        await writer.close();
        redis.disconnect();
      } };
    },
  });
}
