/**
 * The history writer as a supervised actor: historyMachine bound to a
 * HistoryWriter (HistoryWriter.ts), on a Redis connection of its own, one per
 * configured backend, under the `history` supervisor (the kind, `historyKind`,
 * is listed in runtime/kinds.ts). The kind makes each backend's consumer group
 * before the tree starts, so that the first poll is in the outbox already.
 */
import { fromPromise } from 'xstate';
import { historyMachine } from '../../machines/historyMachine.js';
import { machineChild } from '../../runtime/actorHost.js';
import { backoffDelay, type BackoffPolicy } from '../../runtime/backoff.js';
import type { Logger } from '../../runtime/logger.js';
import { openRedis } from '../../runtime/redis/connect.js';
import type { VoltageRedis } from '../../runtime/redis/voltageRedis.js';
import type { ActorRegistry } from '../../runtime/registry.js';
import type { ChildSpec } from '../../runtime/supervisor.js';
import type { ActorKind } from '../../runtime/actorKind.js';
import type { HistoryBackendConfig, HistoryConfig, HistoryKeep } from '../../runtime/config/history.js';
import type { SiteConfig } from '../../runtime/config/site.js';
import type { KeepPolicies } from './keep.js';
import { seriesId } from './outbox.js';
import { VoltageError } from '../../runtime/errors.js';
import { KEYS } from '../../runtime/redis/keys.js';
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
    actions: { prepareBacklog: () => writer.prepareBacklog() },
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
  /** The process's wrapper, whose surface the writer's connection gets (VoltageRedis.onConnection). */
  readonly redis: VoltageRedis;
  readonly registry: ActorRegistry;
  readonly log: Logger;
}

export function historyActorId(backend: string): string {
  return `history/${backend}`;
}

/** One writer per backend, as a supervised child of the history supervisor (historyKind). */
export function historyChild(opts: HistoryWriterOptions, deps: HistoryActorDeps): ChildSpec {
  const id = historyActorId(opts.backend);
  const policy = opts.backoff ?? defaultPolicy;
  return machineChild({
    id,
    registry: deps.registry,
    summarize: (c) => ({
      batches: c.batches,
      entries: c.entries,
      samples: c.samples,
      skipped: c.skipped,
      failures: c.failures,
      rewrites: c.rewrites,
      lastError: c.lastError,
    }),
    async build() {
      const log = deps.log.child({ actor: id });
      const client = openRedis(deps.redisUrl, log, id);
      const writer = new HistoryWriter(deps.redis.onConnection(client), opts, log);
      const machine = provideHistoryMachine(writer, policy, log);
      return {
        machine,
        input: { backend: opts.backend },
        dispose: async () => {
          await writer.close();
          client.disconnect();
        },
      };
    },
  });
}

/**
 * What is kept of each series that is not plain on-change, by series id: a
 * point's own policy, else its channel's; a model value's as load.ts resolved it.
 */
export function keepPolicies(site: Pick<SiteConfig, 'channels' | 'models'>): KeepPolicies {
  const out = new Map<string, HistoryKeep>();
  const special = (k: HistoryKeep | undefined): k is HistoryKeep => k !== undefined && (k.mode !== 'on-change' || k.maxGapMs !== undefined);
  for (const ch of site.channels)
    for (const p of ch.points) {
      const k = p.history ?? ch.history;
      if (special(k)) out.set(seriesId({ kind: 'point', channel: ch.id, type: p.type, point: p.id }), k);
    }
  for (const m of site.models) for (const [name, k] of m.keep) if (special(k)) out.set(seriesId({ kind: 'model', model: m.id, name }), k);
  return out;
}

/** The writer's options for one configured backend; its url must be known by now (the embedded one's too). */
export function writerOptions(
  h: HistoryConfig,
  b: HistoryBackendConfig,
  env: NodeJS.ProcessEnv = process.env,
  keep: KeepPolicies = new Map(),
): HistoryWriterOptions {
  if (b.url === undefined) {
    throw new VoltageError(
      'config',
      'HISTORY_NO_URL',
      `history backend '${b.id}' has no url, and no embedded VictoriaMetrics was started for it (voltage start and voltage demo start one)`,
    );
  }
  const token = b.tokenEnv === undefined ? undefined : env[b.tokenEnv];
  return {
    backend: b.id,
    url: b.url,
    ...(b.org !== undefined ? { org: b.org } : {}),
    ...(b.bucket !== undefined ? { bucket: b.bucket } : {}),
    ...(token !== undefined ? { token } : {}),
    batchMaxEntries: h.batchMaxEntries,
    batchMaxMs: h.batchMaxMs,
    windowMs: h.windowMs,
    drainEntriesPerSecond: h.drainEntriesPerSecond,
    prepareMaxBytes: h.prepareMaxMB * 1024 * 1024,
    qualityEveryMs: h.qualityEveryMs,
    channels: h.channels,
    models: h.models,
    keep,
    tiers: b.kind === 'victoria',
  };
}

/** History: one writer per backend under its own supervisor, when the config has a history section. */
export const historyKind: ActorKind = {
  kind: 'history',
  section: 'history',
  supervisor: { id: 'history', strategy: 'one_for_one', policy: (rt) => rt.supervisor },
  outbox: {
    prefix: KEYS.historyGroup(''),
    groups: (site) => (site.history?.backends ?? []).map((b) => KEYS.historyGroup(b.id)),
    stateKeys: (group) => [KEYS.historyKeep, KEYS.historyTiers].map((key) => key(group.slice(KEYS.historyGroup('').length))),
  },
  children: (site, deps) => {
    const h = site.history;
    if (!h) return [];
    const keep = keepPolicies(site);
    return h.backends.map((b) =>
      historyChild(writerOptions(h, b, process.env, keep), { redisUrl: deps.redisUrl, redis: deps.redis, registry: deps.registry, log: deps.log }),
    );
  },
};
