/**
 * What the history tests against a real VictoriaMetrics share: a private
 * redis-server and VictoriaMetrics for the file (`vm` may be replaced by a
 * test that kills and restarts it), writers run by their machine as the
 * supervisor would (stopped after each test), the wait until a group has
 * written everything, and the check that a counter's values are each stored
 * exactly once.
 */
import { rmSync } from 'node:fs';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import { createActor, type AnyActorRef } from 'xstate';
import { provideHistoryMachine } from '../../actors/history/HistoryActor.js';
import { HistoryWriter, type HistoryWriterOptions } from '../../actors/history/HistoryWriter.js';
import type { VoltageRedis } from '../../runtime/redis/voltageRedis.js';
import { eventually, quietLog, sleep, spawnRedis, wrapper, writeSite, type RedisServer } from './servers.js';
import { forceFlush, spawnVictoria, type VictoriaServer } from './victoria.js';
import { KEYS } from '../../runtime/redis/keys.js';

export interface HistoryRig {
  redis: RedisServer;
  vm: VictoriaServer;
  bus: VoltageRedis;
  raw: Redis;
  /** Things to stop after the test, in order (a writer, a ticker, a runtime process). */
  readonly stops: Array<() => unknown>;
}

/** `aofDir`: Redis with appendonly yes there (appendfsync always), for a test that kills and restarts it (and replaces `redis`). */
export function useHistoryRig(outboxMaxMB = 64, redisOpts: { aofDir?: string } = {}): HistoryRig {
  const rig = { stops: [] as Array<() => unknown> } as HistoryRig;
  beforeAll(async () => {
    [rig.redis, rig.vm] = await Promise.all([spawnRedis(redisOpts), spawnVictoria()]);
    rig.bus = wrapper(rig.redis, { outboxMaxMB });
    rig.raw = new Redis(rig.redis.url, { maxRetriesPerRequest: null }).on('error', () => undefined); // a test may restart Redis
  });
  afterEach(async () => {
    for (const stop of rig.stops.splice(0)) await stop();
  });
  afterAll(async () => {
    rig.raw.disconnect();
    await rig.bus.close();
    await Promise.all([rig.vm.stop(), rig.redis.stop()]);
    rmSync(rig.vm.dataDir, { recursive: true, force: true }); // a restarted server keeps the directory it was given
  });
  return rig;
}

/**
 * A writer on its own connection, run by its machine as the supervisor would; stopped after the test.
 * Resolves once its consumer group exists: c2m appends to the outbox only for a group there is, and
 * the group starts at the stream's end, so a value written before would never be the writer's.
 */
export async function startWriter(
  rig: HistoryRig,
  backend: string,
  batchMaxEntries = 200,
  extra: Partial<HistoryWriterOptions> = {},
): Promise<{ actor: AnyActorRef; writer: HistoryWriter }> {
  const conn = new Redis(rig.redis.url, { maxRetriesPerRequest: null });
  const writer = new HistoryWriter(
    rig.bus.onConnection(conn),
    { backend, url: rig.vm.url, batchMaxMs: 50, batchMaxEntries, windowMs: 10_000, drainEntriesPerSecond: 50_000, timeoutMs: 1_000, ...extra },
    quietLog,
  );
  const machine = provideHistoryMachine(writer, { minBackoffMs: 100, maxBackoffMs: 400, randomFactor: 0, resetBackoffAfterMs: 0 }, quietLog);
  const actor = createActor(machine, { input: { backend } });
  actor.subscribe({ error: () => undefined });
  actor.start();
  rig.stops.push(async () => {
    actor.stop();
    await writer.close();
    conn.disconnect();
  });
  await eventually(async () => (await historyGroup(rig.raw, backend)) !== undefined, 5_000, 20);
  return { actor, writer };
}

/** A backend's group in the outbox: entries read and not acknowledged, and whether it has read the newest entry. */
export async function historyGroup(raw: Redis, backend: string): Promise<{ pending: number; readAll: boolean } | undefined> {
  // No outbox yet (no group made it): no group.
  const groups = (await raw.call('XINFO', 'GROUPS', KEYS.outbox).catch(() => [])) as unknown[][];
  const g = groups
    .map((x) => Object.fromEntries(Array.from({ length: x.length / 2 }, (_, i) => [x[2 * i], x[2 * i + 1]])))
    .find((x) => x.name === KEYS.historyGroup(backend));
  const last = (await raw.xrevrange(KEYS.outbox, '+', '-', 'COUNT', 1))[0]?.[0];
  return g && { pending: Number(g.pending), readAll: g['last-delivered-id'] === last };
}

/** Until the writer's group has no entry left to read or acknowledge; then what VictoriaMetrics took is queryable. */
export async function caughtUp(raw: Redis, vmUrl: string, backend: string): Promise<void> {
  await eventually(
    async () => {
      const g = await historyGroup(raw, backend);
      return g !== undefined && g.pending === 0 && g.readAll;
    },
    20_000,
    50,
  );
  await forceFlush(vmUrl);
}

/**
 * The counter series `sel` holds each of 1…count exactly once, the first of
 * them at or after `firstMs`: none missing (the export), and the count and sum
 * over the window (deduplication applied) those of 1…count.
 */
export async function expectCounterStoredOnce(vmUrl: string, sel: string, count: number, firstMs: number, context = ''): Promise<void> {
  // VictoriaMetrics evaluates an instant query at whole seconds: ask at one after the last value.
  const last = Math.ceil(Date.now() / 1_000) * 1_000 + 1_000;
  // nocache=1: without it VictoriaMetrics 1.79 answered this instant query short by the last
  // ~0.5 s although /api/v1/export held every value (its rollup-result cache; resetting it
  // after the rewrite did not help). The test asks what is stored.
  const at = async (q: string) => {
    const r = (await (await fetch(`${vmUrl}/api/v1/query?query=${encodeURIComponent(q)}&time=${last / 1_000}&nocache=1`)).json()) as {
      data: { result: Array<{ value: [number, string] }> };
    };
    return Number(r.data.result[0]?.value[1]);
  };
  const window = `${last - firstMs + 1_000}ms`;
  // What VictoriaMetrics accepted is queryable within about a second (force_flush does not
  // cover rows still in its ingestion buffers after a restart): wait for it, bounded.
  const missing = async () => {
    await forceFlush(vmUrl);
    const exp = await (await fetch(`${vmUrl}/api/v1/export?match[]=${encodeURIComponent(sel)}`)).text();
    const got = new Set(
      exp
        .trim()
        .split('\n')
        .filter(Boolean)
        .flatMap((l) => (JSON.parse(l) as { values: number[] }).values),
    );
    return Array.from({ length: count }, (_, i) => i + 1).filter((v) => !got.has(v));
  };
  await eventually(async () => (await missing()).length === 0, 5_000, 200).catch(() => undefined);
  expect(await missing(), context).toEqual([]);
  expect(await at(`count_over_time(${sel}[${window}])`)).toBe(count);
  expect(await at(`sum_over_time(${sel}[${window}])`)).toBe((count * (count + 1)) / 2);
}

/** A counter appended to the outbox as a channel's polls would be: 1, 2, 3, … (a value counts once c2m accepted it). */
export interface CounterFeed {
  /** The values accepted so far: 1…value. */
  readonly value: number;
  /** When the first was sent. */
  readonly started: number;
  /** Until resume: no call is in flight once this resolves (so a fault cannot leave one half-accepted). */
  pause(): Promise<void>;
  resume(): void;
  /** No more values; resolves once the last call ended. */
  stop(): Promise<void>;
}

/**
 * Feeds channel `channel` point m:1 with the counter every `everyMs`, with
 * `filler` more points a poll; stopped after the test. A call that fails is
 * not counted (its value is sent again).
 */
export function feedCounter(rig: HistoryRig, channel: string, everyMs: number, filler = 0): CounterFeed {
  const more = Array.from({ length: filler }, (_, i) => ({ type: 'm' as const, id: i + 2, value: i, quality: null }));
  let value = 0;
  let running = true;
  let paused = false;
  let inFlight: Promise<unknown> = Promise.resolve();
  const started = Date.now();
  const loop = (async () => {
    for (let next = Date.now(); running; next += everyMs) {
      if (!paused) {
        inFlight = rig.bus.telemetry.c2m(channel, Date.now(), [{ type: 'm', id: 1, value: value + 1, quality: null }, ...more]).then(
          () => {
            value += 1;
          },
          () => undefined,
        );
        await inFlight;
      }
      await sleep(Math.max(0, next + everyMs - Date.now()));
    }
  })();
  const stop = async () => {
    running = false;
    await loop;
  };
  rig.stops.unshift(stop);
  return {
    get value() {
      return value;
    },
    started,
    pause: async () => {
      paused = true;
      await inFlight;
    },
    resume: () => {
      paused = false;
    },
    stop,
  };
}

/**
 * A site for `voltage start` with one history backend at `url` (batches of up
 * to 4 entries, 20 ms at most) and nothing polled: the test feeds the outbox
 * (feedCounter) as a channel's polls would. Returns its folder.
 */
export function historySite(url: string): string {
  return writeSite({
    'site.yaml': `models:
  - id: m
    measurements: { x: {} }
history:
  backends:
    - { id: vm, url: "${url}" }
  batchMaxEntries: 4
  batchMaxMs: 20
`,
  });
}
