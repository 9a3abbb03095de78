/**
 * Telemetry in Redis: a channel's poll batch (c2m), a model's calculated
 * values, reading them back, and the outbox they feed (one stream, a consumer
 * group per consumer, bounded in bytes: outbox_add in lua/core.lua).
 */
import type { PointType } from '../config/site.js';
import { C2mBatch } from '../domain/c2mBatch.js';
import type { C2mResult, ModelValue, OutboxStats, PointSample, ValueRecord } from '../domain/telemetry.js';
import type { Logger } from '../logger.js';
import { RedisFunctionError } from '../errors.js';
import { redisCall, type RedisCore } from './core.js';
import { compareIds, fieldsOf, valueRecords } from './encoding.js';
import { KEYS } from './keys.js';

export interface OutboxLimits {
  readonly outboxMaxMB: number;
  /**
   * Group commit: how long a poll's batch may wait for others to share its c2m call
   * (0: only those that end in the same turn of the event loop; undefined: no grouping).
   */
  readonly commitLingerMs?: number;
}

/** A group's calls stop taking batches at this many points (one Redis call stays short). */
const GROUP_MAX_POINTS = 5_000;

interface PendingBatch {
  readonly channel: string;
  readonly ts: number;
  readonly points: Buffer;
  readonly resolve: (r: C2mResult) => void;
  readonly reject: (e: unknown) => void;
}

/** Drops are logged at most this often, with the count since the last line. */
const DROP_LOG_MS = 10_000;

export class TelemetryRedis {
  private readonly outboxMaxBytes: number;
  private droppedSinceLog = 0;
  private lastDropLog = 0;
  private readonly lingerMs: number | undefined;
  /** Batches waiting for their group's call, and their points. */
  private pending: PendingBatch[] = [];
  private pendingPoints = 0;
  private flushScheduled = false;

  constructor(
    private readonly core: RedisCore,
    limits: OutboxLimits,
    private readonly log?: Logger,
  ) {
    this.outboxMaxBytes = Math.round(limits.outboxMaxMB * 2 ** 20);
    this.lingerMs = limits.commitLingerMs;
  }

  /**
   * One poll's points of one channel, atomically (see c2m in lua/telemetry.lua).
   * With group commit on, batches that end together share one call (c2m_group):
   * each is still checked and written on its own, and settles on its own.
   * The batch's bytes must stay as they are until the promise settles.
   */
  async c2m(channel: string, ts: number, points: C2mBatch | readonly PointSample[]): Promise<C2mResult> {
    const batch = points instanceof C2mBatch ? points : C2mBatch.of(points);
    if (this.lingerMs === undefined) return this.c2mOne(channel, ts, batch.bytes());
    return new Promise<C2mResult>((resolve, reject) => {
      this.pending.push({ channel, ts, points: batch.bytes(), resolve, reject });
      this.pendingPoints += batch.count;
      if (this.pendingPoints >= GROUP_MAX_POINTS) this.flush();
      else if (!this.flushScheduled) {
        this.flushScheduled = true;
        if (this.lingerMs === 0) setImmediate(() => this.flush());
        else setTimeout(() => this.flush(), this.lingerMs);
      }
    });
  }

  private async c2mOne(channel: string, ts: number, points: Buffer): Promise<C2mResult> {
    const [n, models, dropped, siteMissing] = await this.core.fcall('c2m', { channel, ts, outboxMaxBytes: this.outboxMaxBytes, points });
    if (siteMissing === 1) this.restoreSite();
    this.noteDropped(dropped);
    return { points: n, models, outboxDropped: dropped };
  }

  /** Sends what waits: one batch as c2m, several as one c2m_group. */
  private flush(): void {
    const group = this.pending;
    this.pending = [];
    this.pendingPoints = 0;
    this.flushScheduled = false;
    if (group.length === 0) return;
    if (group.length === 1) {
      const b = group[0]!;
      this.c2mOne(b.channel, b.ts, b.points).then(b.resolve, b.reject);
      return;
    }
    this.core.fcall('c2m_group', { outboxMaxBytes: this.outboxMaxBytes, batches: group }).then(
      (r) => {
        if (r[0] === 1) this.restoreSite();
        group.forEach((b, i) => {
          const [n, models, dropped, error] = r.slice(1 + 4 * i, 5 + 4 * i) as [number, number, number, string];
          this.noteDropped(dropped);
          if (error === '') b.resolve({ points: n, models, outboxDropped: dropped });
          else b.reject(new RedisFunctionError('c2m', `EVOLTAGE ${error}`));
        });
      },
      (e: unknown) => {
        for (const b of group) b.reject(e);
      },
    );
  }

  /** Calculated values of one model; returns how many. */
  async modelSet(model: string, ts: number, values: readonly ModelValue[]): Promise<number> {
    const [n, dropped] = await this.core.fcall('model_set', { model, ts, outboxMaxBytes: this.outboxMaxBytes, values });
    this.noteDropped(dropped);
    return n;
  }

  /** Redis lost the site (FLUSHALL, a restart without persistence) while the Functions stayed: load it again (SiteRedis logs it). */
  private restoreSite(): void {
    this.core.reload().catch((err: unknown) => this.log?.error({ err }, 'could not restore the site in Redis'));
  }

  /** Nothing is dropped silently: counted in Redis by the Function, and logged here (throttled). */
  private noteDropped(n: number): void {
    if (n <= 0) return;
    this.droppedSinceLog += n;
    const now = Date.now();
    if (now - this.lastDropLog < DROP_LOG_MS) return;
    this.log?.warn(
      { dropped: this.droppedSinceLog, outboxMaxMB: this.outboxMaxBytes / 2 ** 20 },
      'the outbox is full: its oldest unread entries were dropped (a consumer is down or too slow)',
    );
    this.lastDropLog = now;
    this.droppedSinceLog = 0;
  }

  /** The values of one value hash (channel type or model) with their timestamps and qualities. */
  async values(hashBase: string): Promise<Map<string, ValueRecord>> {
    const client = this.core.client;
    const [v, t, q] =
      (await redisCall('HGETALL', () => client.multi().hgetall(hashBase).hgetall(KEYS.timestamps(hashBase)).hgetall(KEYS.qualities(hashBase)).exec())) ?? [];
    return valueRecords((v?.[1] ?? {}) as Record<string, string>, (t?.[1] ?? {}) as Record<string, string>, (q?.[1] ?? {}) as Record<string, string>);
  }

  /** Which of `models` the loaded site has (site:models). */
  async knownModels(models: readonly string[]): Promise<Set<string>> {
    if (models.length === 0) return new Set();
    const is = await redisCall('SMISMEMBER', () => this.core.client.smismember(KEYS.siteModels, ...models));
    return new Set(models.filter((_, i) => is[i] === 1));
  }

  modelValues(model: string): Promise<Map<string, ValueRecord>> {
    return this.values(KEYS.model(model));
  }

  channelValues(channel: string, type: PointType): Promise<Map<string, ValueRecord>> {
    return this.values(KEYS.channel(channel, type));
  }

  /** The outbox's length, size and drops, and each consumer group's backlog, read at one instant (one MULTI). */
  async outboxStats(): Promise<OutboxStats> {
    const client = this.core.client;
    const [len, stats, oldest, newest, info] =
      (await redisCall('XLEN', () =>
        client
          .multi()
          .xlen(KEYS.outbox)
          .hgetall(KEYS.outboxStats)
          .xrange(KEYS.outbox, '-', '+', 'COUNT', 1)
          .xrevrange(KEYS.outbox, '+', '-', 'COUNT', 1)
          .xinfo('GROUPS', KEYS.outbox)
          .exec(),
      )) ?? [];
    const s = (stats?.[1] ?? {}) as Record<string, string>;
    const length = Number(len?.[1] ?? 0);
    const firstId = (oldest?.[1] as Array<[string, string[]]> | undefined)?.[0]?.[0];
    const newestId = (newest?.[1] as Array<[string, string[]]> | undefined)?.[0]?.[0];
    // XINFO GROUPS fails (inside the MULTI) when there is no outbox: no groups then.
    const raw = info && !info[0] ? (info[1] as unknown[][]) : [];
    const groups: OutboxStats['groups'] = raw.map((g) => {
      const f = fieldsOf(g.map(String));
      const read = f['last-delivered-id'];
      const pending = Number(f.pending ?? 0);
      const lag = f.lag === undefined || f.lag === '' ? null : Number(f.lag);
      // XINFO's lag counts the entries added since the group's last read, the ones the bound dropped unread
      // included, and goes on counting them once the group has read everything there is (Redis 7.0). So: a
      // group that has read the newest entry has none unread; one whose last read is older than the oldest
      // entry has all of them unread; otherwise at most what the stream holds beside its pending entries
      // (those it read and has not acknowledged: they are not unread).
      let unread: number | null;
      if (newestId === undefined || (read !== undefined && compareIds(read, newestId) >= 0)) unread = 0;
      else if (read !== undefined && firstId !== undefined && compareIds(read, firstId) < 0) unread = length;
      else unread = lag === null ? null : Math.min(lag, Math.max(0, length - pending));
      return { name: f.name ?? '', pending, lag: unread };
    });
    return { length, bytes: Number(s.bytes ?? 0), dropped: Number(s.dropped ?? 0), groups };
  }
}
