/**
 * Wires a SiteConfig into a running tree, built from the kinds table
 * (runtime/kinds.ts) by planTree (runtime/actorKind.ts):
 *
 *   root (rest_for_one)
 *   ├─ models   (one_for_one) ── model/<id> …
 *   ├─ channels (one_for_one) ── channel/<id> …
 *   └─ gateway  (HTTP API; when the config has a gateway section)
 *
 * The root's escalation is the end of the runtime: `exited` resolves with the
 * reason and the CLI exits non-zero with it.
 */
import { collectProcessMetrics, takePollToRedis } from './metrics.js';
import type { Device } from '../actors/channel/device.js';
import './protocols.js';
import { planTree, syncOutboxGroups, type KindDeps } from './actorKind.js';
import { KINDS } from './kinds.js';
import type { ChannelConfig, SiteConfig } from './config/site.js';
import { pointKey } from './config/site.js';
import { errorMessage } from './errors.js';
import type { Logger } from './logger.js';
import type { Redis } from 'ioredis';
import { openRedis, redactUrl, whenReady, within } from './redis/connect.js';
import type { SiteDescription } from './domain/site.js';
import type { Subscriptions } from './redis/subscriptions.js';
import { VoltageRedis } from './redis/voltageRedis.js';
import { ActorRegistry } from './registry.js';
import { settled } from './reporter.js';
import type { Role } from './config/schema.js';
import type { ExitReason, Supervisor } from './supervisor.js';

export interface RuntimeOptions {
  readonly redisUrl: string;
  readonly log: Logger;
  readonly device?: (channel: ChannelConfig) => Device;
  readonly heartbeatMs?: number;
  /** Tokens for the gateway given at start (the demo's), besides the hashed ones of the config. */
  readonly gatewayTokens?: ReadonlyArray<{ name: string; role: Role; token: string }>;
}

export interface RunningRuntime {
  readonly redis: VoltageRedis;
  readonly root: Supervisor;
  /** The gateway's port once it listens (undefined without a gateway section). */
  gatewayPort(): number | undefined;
  /** Resolves when the tree ends by itself (root escalation). */
  readonly exited: Promise<ExitReason>;
  stop(): Promise<void>;
}

export function describeSite(site: SiteConfig): SiteDescription {
  const mapping = new Map<string, string>();
  for (const m of site.models) for (const [name, ref] of m.mapping) mapping.set(pointKey(ref), `${m.id}:${name}`);
  const controls = new Map<string, string>();
  for (const m of site.models) for (const [name, c] of m.controls) controls.set(`${m.id}:${name}`, `${pointKey(c)}|${c.min ?? ''}|${c.max ?? ''}`);
  const json = JSON.stringify({
    site: site.runtime.site,
    channels: site.channels.map((c) => ({
      id: c.id,
      name: c.name ?? c.id,
      protocol: c.protocol,
      pollMs: c.pollMs,
      points: c.points.map((p) => ({ type: p.type, id: p.id, name: p.name ?? null, unit: p.unit ?? null })),
    })),
    models: site.models.map((m) => ({
      id: m.id,
      name: m.name,
      nature: m.nature,
      measurements: [...m.measurements].map(([name, v]) => ({ name, unit: v.unit ?? null })),
      controls: [...m.controls].map(([name, c]) => ({ name, point: pointKey(c), min: c.min ?? null, max: c.max ?? null })),
      calculations: m.calculations.map((c) => ({ name: c.name, expr: c.expr.source, unit: c.unit ?? null })),
    })),
  });
  return { site: site.runtime.site, json, mapping, controls, models: site.models.map((m) => m.id) };
}

/** Says so when the Redis runs with a setting that makes c2m slower than it needs to be (see REDIS_TUNING). */
async function adviseRedisSettings(client: Redis, log: Logger): Promise<void> {
  let entries: number;
  try {
    entries = Number(((await client.config('GET', 'hash-max-listpack-entries')) as string[])[1]);
  } catch {
    return; // CONFIG may be renamed or forbidden: nothing to advise
  }
  if (entries > 32) {
    log.info(
      { 'hash-max-listpack-entries': entries },
      `Redis keeps hashes of up to ${entries} fields as listpacks; \`hash-max-listpack-entries 32\` in redis.conf makes point writes ~20 % cheaper (README, "Redis for a site")`,
    );
  }
}

export async function startRuntime(site: SiteConfig, opts: RuntimeOptions): Promise<RunningRuntime> {
  const log = opts.log;
  const client = openRedis(opts.redisUrl, log);
  log.info({ redis: redactUrl(opts.redisUrl) }, `connecting to Redis at ${redactUrl(opts.redisUrl)}`);
  await whenReady(client);
  await adviseRedisSettings(client, log);
  const redis = new VoltageRedis(client, site.runtime.redis, { log });
  await redis.site.load(describeSite(site));
  const subscriptions: Subscriptions = redis.subscriber();
  const registry = new ActorRegistry(redis, log);
  // Registered after the site's restorer: once the site is loaded again (which empties the tree), the tree is written again.
  let restoredTree = 0;
  redis.core.onReload(async () => {
    if (redis.site.restorations === restoredTree) return;
    restoredTree = redis.site.restorations;
    registry.reportAll();
  });

  const listening = new Map<string, number>();
  const deps: KindDeps = {
    redis,
    subscriptions,
    registry,
    log,
    redisUrl: opts.redisUrl,
    gatewayTokens: opts.gatewayTokens ?? [],
    onListening: (actor, port) => {
      listening.set(actor, port);
    },
    ...(opts.device ? { device: opts.device } : {}),
  };
  const plan = planTree(KINDS, site, deps);
  await syncOutboxGroups(KINDS, site, redis, log);
  for (const n of plan.nodes) registry.declare(n.id, n.kind, n.parent, { order: n.order, ...(n.strategy ? { strategy: n.strategy } : {}) });
  const root = plan.root((e) => registry.onSupervisorEvent(e));

  let resolveExit: (r: ExitReason) => void = () => undefined;
  const exited = new Promise<ExitReason>((r) => {
    resolveExit = r;
  });
  root.onExit((reason) => {
    registry.report('root', { status: 'escalated', lastError: reason.kind === 'error' ? errorMessage(reason.error) : '' });
    resolveExit(reason);
  });

  const startedAt = Date.now();
  // Event-loop delay since the last heartbeat: the first thing to look at when latency is off.
  // The process's one monitor (runtime/loopDelay.ts), shared with /metrics: the delay beyond its period.
  const loop = collectProcessMetrics().reader();
  const beat = () => {
    const mem = process.memoryUsage();
    const p2r = takePollToRedis();
    const delay = loop.take();
    registry.report('root', {
      pid: process.pid,
      heartbeatAt: Date.now(),
      startedAt,
      redis: redactUrl(opts.redisUrl),
      rssMb: Math.round(mem.rss / 2 ** 20),
      heapUsedMb: Math.round(mem.heapUsed / 2 ** 20),
      heapTotalMb: Math.round(mem.heapTotal / 2 ** 20),
      externalMb: Math.round(mem.external / 2 ** 20),
      loopDelayP99Ms: Math.round(delay.p99Ms),
      loopDelayMaxMs: Math.round(delay.maxMs),
      pollToRedisP50Ms: p2r.p50.toFixed(1),
      pollToRedisP99Ms: p2r.p99.toFixed(1),
      pollToRedisMaxMs: p2r.max.toFixed(1),
    });
  };
  beat();
  const heartbeat = setInterval(beat, opts.heartbeatMs ?? 5_000);
  // After Redis comes back empty (restarted without persistence), write the tree again;
  // the Functions library and the mapping are restored by the wrapper on first use.
  const onReady = () => registry.reportAll();
  client.on('ready', onReady);

  await root.start();
  registry.report('root', { status: 'running' });
  const count = (kind: string) => plan.nodes.filter((n) => n.kind === kind).length;
  log.info({ channels: count('channel'), models: count('model') }, `runtime started: ${count('channel')} channel(s), ${count('model')} model(s)`);

  let stopped: Promise<void> | undefined;
  return {
    redis,
    root,
    exited,
    gatewayPort: () => listening.get('gateway'),
    stop: () =>
      (stopped ??= (async () => {
        clearInterval(heartbeat);
        loop.close();
        client.off('ready', onReady);
        await root.stop();
        registry.report('root', { status: 'stopped', heartbeatAt: Date.now() });
        registry.dispose();
        await within(settled(redis.ping(), { source: 'stop: writing the last reports' }), 2_000); // unless Redis is gone (reported)
        await subscriptions.close();
        await redis.close();
        log.info('runtime stopped');
      })()),
  };
}
