/**
 * Binds historyMachine to Redis and a history database: reads the outbox
 * stream through its own consumer group (at-least-once), turns entries into
 * line protocol (outbox.ts), writes batches gzipped with
 * @influxdata/influxdb-client's WriteApi, and XACKs a batch only after the
 * database accepted it. A batch that fails stays pending in the group and is
 * read again (from id 0) after the backoff.
 *
 * The recent window: VictoriaMetrics 1.79 loses roughly the last 5 s it had
 * acknowledged when it is killed. The writer remembers, per accepted batch, the
 * range of stream ids it held and when it was accepted — ids, not lines, so the
 * window costs a few bytes a batch — and after a failure reads the window's
 * ranges again from the stream (XRANGE) and writes them once more before
 * anything else. Deduplication (-dedup.minScrapeInterval=1ms) makes the repeat
 * harmless. The window is pruned only on success, so a long outage does not
 * age it away. Limits: a database that restarts between two batches, without
 * any write failing, is not noticed; entries the stream's bound trimmed are
 * gone from the window too (they are counted as dropped by c2m).
 *
 * Why the WriteApi and not a plain fetch: it does what is needed once its own
 * buffering is switched off (flushInterval 0, a WriteApi a batch sized to it,
 * `writeFailed` returning the error so that `flush()` rejects and nothing is
 * kept in its retry buffer): gzip above `gzipThreshold`, precision ms, the same
 * code for InfluxDB 2/3 (token, org, bucket) and VictoriaMetrics.
 *
 * It never drops an entry it could not write; it drops (acknowledges) only
 * entries that are not in the outbox format, and counts and logs them.
 */
import { InfluxDB } from '@influxdata/influxdb-client';
import type { BatchMode, BatchResult } from '../../machines/historyMachine.js';
import type { BackoffPolicy } from '../../runtime/backoff.js';
import type { Redis } from 'ioredis';
import { errorMessage } from '../../runtime/errors.js';
import type { Logger } from '../../runtime/logger.js';
import { KEYS } from '../../runtime/redis/keys.js';
import { compareIds, OutboxConsumer, OutboxOutageError, type StreamEntries } from '../outbox/consumer.js';
import { healthy } from '../../runtime/victoriaServer.js';
import { KeepFilter, type KeepPolicies } from './keep.js';
import { dueBuckets, initialMarks, TIER_DELAY_MS, TIERS, type Tier, type TierMarks, writeTierBucket } from './tiers.js';
import { decodeEntry, OutboxFormatError, seriesId, toLine, type HistorySample } from './outbox.js';

/** The Redis names this writer uses (from the key table). */
export const HISTORY_KEYS = {
  /** The outbox stream (c2m and model_set append to it once a consumer group made it). */
  stream: KEYS.outbox,
  /** channel:type:point → model:name, as site_load writes it (to historize model measurements). */
  mapping: KEYS.mappingC2m,
  /** The consumer group of a backend. */
  group: (backend: string) => `history:${backend}`,
  /** The KeepFilter's state of a backend (open intervals, last written values for heartbeats): series id → JSON. */
  keep: (backend: string) => `history:${backend}:keep`,
  /** Where each tier of a backend stands (tiers.ts): tier name → the end of its last bucket written (epoch ms). */
  tiers: (backend: string) => `history:${backend}:tiers`,
} as const;

export interface HistoryWriterOptions {
  /** Names the backend (its consumer group and actor id). */
  readonly backend: string;
  readonly url: string;
  /** InfluxDB 2/3: org, bucket and token (taken from an environment variable by the config). VictoriaMetrics ignores them. */
  readonly org?: string;
  readonly bucket?: string;
  readonly token?: string;
  readonly stream?: string;
  readonly consumer?: string;
  /** Entries a batch (a c2m entry holds one poll of a channel). */
  readonly batchMaxEntries?: number;
  /** The longest a live batch waits to fill. */
  readonly batchMaxMs?: number;
  /**
   * Lines a write at most (default 50,000): a poll of a 1,000-point channel is
   * one entry and 1,000 to 2,000 lines, so a batch is sized in entries from the
   * lines an entry has made lately. Bounds the writer's memory (the runtime's
   * heap is capped) whatever the size of an entry.
   */
  readonly batchMaxLines?: number;
  /** How long accepted batches are kept (as id ranges) to write again after a failure; at least 10 s. */
  readonly windowMs?: number;
  /** Entries a second while draining a backlog (new entries keep arriving meanwhile). */
  readonly drainEntriesPerSecond?: number;
  /** Raw channel points (default true). */
  readonly channels?: boolean;
  /** Model values: calculated ones (model_set) and measurements mapped from channel points (default true). */
  readonly models?: boolean;
  /** What is kept of each series that is not plain on-change (series id → policy; keep.ts). */
  readonly keep?: KeepPolicies;
  /** Interval ends and heartbeats are written this long after they are due, so that a late poll still counts (default 5 s). */
  readonly keepGraceMs?: number;
  /** Write the 1 m and 1 h tiers (tiers.ts; needs the Prometheus query API: VictoriaMetrics). */
  readonly tiers?: boolean;
  /** How long after a bucket's end it is computed (default TIER_DELAY_MS). */
  readonly tierDelayMs?: number;
  /** Buckets computed at most per check (a check every 5 s), so that catching up does not hold up the live writes. */
  readonly tierBucketsPerCheck?: number;
  /** How often the c2m mapping is read again (a site reload changes it); it is also read at every connect. */
  readonly mappingRefreshMs?: number;
  readonly gzipThreshold?: number;
  readonly timeoutMs?: number;
  readonly backoff?: BackoffPolicy;
}

/** VictoriaMetrics makes what it accepted searchable within about a second; tiers are computed from what was written at least this long ago. */
const SEARCHABLE_MS = 3_000;

/** Transient to the machine: an outage, retried with backoff, not a restart. */
export class HistoryOutageError extends OutboxOutageError {}

interface WindowBatch {
  at: number;
  /** The stream ids of the batch; '' for a batch of derived lines only. */
  readonly first: string;
  readonly last: string;
  /** Lines the writer made itself (interval values, heartbeats): not in the stream, so kept here to write again. */
  readonly derived: readonly string[];
}

export class HistoryWriter {
  readonly stream: string;
  readonly group: string;
  private readonly outbox: OutboxConsumer;
  private readonly maxEntries: number;
  private readonly maxLines: number;
  /** Lines an entry made, on average over the last batches (a cautious guess before the first: 16 entries a batch). */
  private linesPerEntry: number;
  private readonly batchMaxMs: number;
  private readonly windowMs: number;
  private readonly drainRate: number;
  private readonly influx: InfluxDB;
  private readonly window: WindowBatch[] = [];
  private drainStartedAt = 0;
  /** `channel:type:point` → the model value it feeds. */
  private mapping = new Map<string, { readonly model: string; readonly name: string }>();
  private mappingReadAt = 0;
  private drained = 0;
  private readonly keep: KeepFilter;
  private readonly keepTrivial: boolean;
  private readonly keepGraceMs: number;
  /** Derived lines of the batch being written (moved into its window entry once acknowledged). */
  private derived: string[] = [];
  private marks: TierMarks | undefined;
  /** Every poll stamped at or before this has been written (while caught up: when the last read began). */
  private writtenThrough = 0;
  private tierCheckAt = 0;
  /** writtenThrough as it was at each batch: the database makes what it accepted searchable within ~1 s, so tiers use one a few seconds old. */
  private throughLog: Array<{ readonly at: number; readonly through: number }> = [];
  /** Tier buckets written lately: after a database failure they are computed and written again. */
  private recentTiers: Array<{ readonly tier: Tier; readonly end: number; readonly at: number }> = [];

  constructor(
    private readonly redis: Redis,
    private readonly opts: HistoryWriterOptions,
    private readonly log: Logger,
  ) {
    this.stream = opts.stream ?? HISTORY_KEYS.stream;
    this.group = HISTORY_KEYS.group(opts.backend);
    this.outbox = new OutboxConsumer(redis, this.stream, this.group, opts.consumer ?? 'writer');
    this.maxEntries = opts.batchMaxEntries ?? 500;
    this.maxLines = opts.batchMaxLines ?? 50_000;
    this.linesPerEntry = this.maxLines / 16;
    this.batchMaxMs = opts.batchMaxMs ?? 200;
    this.windowMs = Math.max(10_000, opts.windowMs ?? 15_000);
    this.drainRate = opts.drainEntriesPerSecond ?? 5_000;
    this.keep = new KeepFilter(opts.keep ?? new Map());
    this.keepTrivial = this.keep.trivial;
    this.keepGraceMs = opts.keepGraceMs ?? 5_000;
    this.influx = new InfluxDB({ url: opts.url, token: opts.token ?? 'voltage', timeout: opts.timeoutMs ?? 5_000 });
  }

  /** The group exists (from the stream's start: a new backend writes the whole backlog) and the database answers. */
  async connect(): Promise<void> {
    await this.outbox.ensureGroup();
    await this.readMapping();
    if (!this.keepTrivial) this.keep.restore(await this.redis.hgetall(HISTORY_KEYS.keep(this.opts.backend)));
    if (!(await healthy(this.opts.url))) throw new HistoryOutageError(`the history database at ${this.opts.url} does not answer /health`);
  }

  private async readMapping(): Promise<void> {
    if (this.opts.models === false) return;
    this.mapping = await this.outbox.readMapping();
    this.mappingReadAt = Date.now();
  }

  /** Writes the recent window again (after a failure); returns the entries written. */
  async rewriteWindow(): Promise<number> {
    if (this.window.length === 0) return 0;
    const derived = this.window.flatMap((w) => w.derived);
    if (derived.length > 0) await this.send(derived);
    // Tier lines written in the window may be lost too: their buckets are computed again.
    if (this.marks) {
      for (const t of this.recentTiers) this.marks[t.tier.name] = Math.min(this.marks[t.tier.name], t.end - t.tier.ms);
      this.recentTiers = [];
    }
    const ranges = this.window.filter((w) => w.first !== '');
    let n = 0;
    let first = ranges[0]?.first ?? '';
    let last = ranges[0]?.last ?? '';
    for (const w of ranges) {
      if (compareIds(w.first, first) < 0) first = w.first;
      if (compareIds(w.last, last) > 0) last = w.last;
    }
    for (let from = first; ranges.length > 0; ) {
      const max = this.max;
      const entries = (await this.redis.xrange(this.stream, from, last, 'COUNT', max)) as StreamEntries;
      if (entries.length === 0) break;
      await this.write(entries, undefined);
      n += entries.length;
      if (entries.length < max) break;
      from = `(${entries[entries.length - 1]![0]}`;
    }
    const now = Date.now();
    for (const w of this.window) w.at = now;
    this.log.info({ entries: n }, `wrote the last ${this.windowMs} ms of history again after the database came back`);
    return n;
  }

  /** Reads one batch (pending ones first), writes it, acknowledges it. */
  async writeBatch(mode: BatchMode): Promise<BatchResult> {
    const readStart = Date.now();
    const max = this.max;
    const entries = await this.read(mode, max);
    const full = entries.length >= max;
    if (entries.length === 0 && this.keepTrivial && (!this.opts.tiers || Date.now() < this.tierCheckAt))
      return { entries: 0, samples: 0, skipped: 0, full: false };
    // Up to when intervals close and heartbeats are due: live and caught up, the clock; behind, the batch's newest poll.
    let clock = Date.now();
    if (mode === 'drain' || full) {
      clock = 0;
      for (const [, f] of entries) clock = Math.max(clock, entryTs(f));
    }
    let result: { samples: number; skipped: number };
    this.derived = [];
    try {
      result = await this.write(entries, clock - this.keepGraceMs);
    } catch (e) {
      this.outbox.pendingMayExist = true;
      throw e;
    }
    const dirty = this.keepTrivial ? [] : this.keep.takeDirty();
    if (dirty.length > 0) await this.redis.hset(HISTORY_KEYS.keep(this.opts.backend), ...dirty.flat());
    const now = Date.now();
    if (mode === 'live' && !full && !this.outbox.pendingMayExist) this.writtenThrough = readStart;
    else if (entries.length > 0) this.writtenThrough = Math.max(this.writtenThrough, clock - 1); // behind: the batch's newest poll
    if (this.opts.tiers) this.throughLog.push({ at: now, through: this.writtenThrough });
    if (entries.length === 0) {
      if (this.derived.length > 0) this.window.push({ at: now, first: '', last: '', derived: this.derived }); // no stream range: only derived lines
      if (this.opts.tiers && now >= this.tierCheckAt) await this.writeTiers(now);
      return { entries: 0, ...result, full: false };
    }
    await this.redis.xack(this.stream, this.group, ...entries.map(([id]) => id));
    let first = entries[0]![0];
    let last = first;
    for (const [id] of entries) {
      if (compareIds(id, first) < 0) first = id;
      if (compareIds(id, last) > 0) last = id;
    }
    this.window.push({ at: now, first, last, derived: this.derived });
    while (this.window.length > 0 && this.window[0]!.at < now - this.windowMs) this.window.shift();
    if (this.opts.tiers && now >= this.tierCheckAt) await this.writeTiers(now);
    if (mode === 'drain') await this.pace(entries.length);
    else this.drainStartedAt = 0;
    return { entries: entries.length, ...result, full };
  }

  async close(): Promise<void> {
    // Nothing is buffered between batches: a batch's WriteApi is disposed after its flush.
  }

  /** Entries a batch: batchMaxEntries, fewer when entries are big (batchMaxLines). */
  private get max(): number {
    return Math.max(1, Math.min(this.maxEntries, Math.floor(this.maxLines / this.linesPerEntry)));
  }

  private async read(mode: BatchMode, max: number): Promise<StreamEntries> {
    if (mode === 'drain') return this.outbox.next(max);
    if (this.outbox.pendingMayExist) {
      const pending = await this.outbox.next(max);
      if (pending.length > 0) return pending;
    }
    // Live: wait for the first entry up to batchMaxMs, then fill until full or the time is up.
    const deadline = Date.now() + this.batchMaxMs;
    const out: StreamEntries = [];
    while (out.length < max) {
      const left = deadline - Date.now();
      if (left < 1) break;
      const got = await this.outbox.read(max - out.length, left, '>');
      if (got.length === 0) break;
      out.push(...got);
    }
    return out;
  }

  /**
   * Line protocol for the entries, written in one gzipped request. `clock`:
   * interval ends and heartbeats due by then are written too (undefined: the
   * window written again, whose derived lines are written apart).
   */
  private async write(entries: StreamEntries, clock: number | undefined): Promise<{ samples: number; skipped: number }> {
    if (Date.now() - this.mappingReadAt > (this.opts.mappingRefreshMs ?? 60_000)) await this.readMapping();
    const lines: string[] = [];
    const channels = this.opts.channels !== false;
    const models = this.opts.models !== false;
    let skipped = 0;
    const kept: HistorySample[] = [];
    const derived: HistorySample[] = [];
    const keep = (s: HistorySample) => {
      if (this.keepTrivial) {
        lines.push(toLine(s));
        return;
      }
      kept.length = 0;
      this.keep.take(seriesId(s.series), s, kept, derived);
      for (const k of kept) lines.push(toLine(k));
    };
    for (const [id, fields] of entries) {
      // A trimmed entry read from the pending list comes back with no fields.
      if (!fields || fields.length === 0) continue;
      try {
        for (const s of decodeEntry(fields)) {
          if (s.series.kind === 'model') {
            if (models) keep(s);
            continue;
          }
          if (s.series.kind === 'alarm' || s.series.kind === 'command') {
            lines.push(toLine(s)); // alarm and command events are kept as events whatever the switches
            continue;
          }
          if (channels) keep(s);
          const target = models ? this.mapping.get(`${s.series.channel}:${s.series.type}:${s.series.point}`) : undefined;
          if (target) keep({ ...s, series: { kind: 'model', model: target.model, name: target.name } });
        }
      } catch (e) {
        if (!(e instanceof OutboxFormatError)) throw e;
        skipped += 1;
        this.log.warn({ entry: id, err: e.message }, 'skipped an outbox entry that is not in the outbox format');
      }
    }
    if (clock !== undefined && !this.keepTrivial) {
      const due: HistorySample[] = [];
      this.keep.due(clock, due);
      for (const d of due) lines.push(toLine(d));
      derived.push(...due);
    }
    if (clock !== undefined) this.derived = derived.map(toLine);
    if (entries.length > 0) this.linesPerEntry = 0.5 * this.linesPerEntry + 0.5 * Math.max(1, lines.length / entries.length);
    await this.send(lines);
    return { samples: lines.length, skipped };
  }

  /** Lines in one gzipped request. */
  private async send(lines: readonly string[]): Promise<void> {
    if (lines.length > 0) {
      // A WriteApi a batch, sized to it: one that fills up flushes on its own, and
      // the outcome of such a write would not be the outcome of flush().
      const api = this.influx.getWriteApi(this.opts.org ?? 'voltage', this.opts.bucket ?? 'voltage', 'ms', {
        batchSize: lines.length + 1,
        maxBatchBytes: Number.MAX_SAFE_INTEGER,
        flushInterval: 0,
        maxRetries: 0,
        gzipThreshold: this.opts.gzipThreshold ?? 1_000,
        writeFailed: (error: Error) => Promise.reject(error),
      });
      api.writeRecords(lines as string[]);
      try {
        await api.flush();
      } catch (e) {
        throw new HistoryOutageError(`the history database at ${this.opts.url} did not accept ${lines.length} samples: ${errorMessage(e)}`);
      } finally {
        api.dispose();
      }
    }
  }

  /** The tier buckets that are due (tiers.ts), computed by the database and written back; the marks kept in Redis. */
  private async writeTiers(now: number): Promise<void> {
    this.tierCheckAt = now + 5_000;
    const key = HISTORY_KEYS.tiers(this.opts.backend);
    if (!this.marks) {
      const kept = await this.redis.hgetall(key);
      if (TIERS.every((t) => Number.isFinite(Number(kept[t.name])) && kept[t.name] !== undefined)) {
        this.marks = Object.fromEntries(TIERS.map((t) => [t.name, Number(kept[t.name])])) as TierMarks;
      } else {
        // From the oldest entry still in the outbox (a new backend writes all of it), else from now.
        const oldest = (await this.redis.xrange(this.stream, '-', '+', 'COUNT', 1))[0]?.[0];
        this.marks = initialMarks(oldest ? Number(oldest.split('-')[0]) : now);
        await this.redis.hset(key, this.marks);
      }
    }
    let through = 0;
    while (this.throughLog.length > 0 && this.throughLog[0]!.at <= now - SEARCHABLE_MS) through = this.throughLog.shift()!.through;
    if (through > 0) this.throughLog.unshift({ at: now - SEARCHABLE_MS, through });
    const due = dueBuckets(this.marks, Math.min(through, now) - (this.opts.tierDelayMs ?? TIER_DELAY_MS), this.opts.tierBucketsPerCheck ?? 30);
    for (const b of due) {
      try {
        await writeTierBucket(this.opts.url, b.tier, b.end, (lines) => this.send(lines), this.opts.timeoutMs ?? 5_000);
      } catch (e) {
        if (e instanceof HistoryOutageError) throw e;
        throw new HistoryOutageError(`the history database at ${this.opts.url} did not answer a tier query: ${errorMessage(e)}`);
      }
      this.marks[b.tier.name] = b.end;
      this.recentTiers.push({ tier: b.tier, end: b.end, at: now });
      await this.redis.hset(key, b.tier.name, b.end);
    }
    while (this.recentTiers.length > 0 && this.recentTiers[0]!.at < now - this.windowMs) this.recentTiers.shift();
    // Buckets older than VictoriaMetrics' response cache offset (5 min) are a backfill: answers cached before them are stale.
    if (due.some((b) => b.end < now - 300_000))
      await fetch(`${this.opts.url}/internal/resetRollupResultCache`).then(
        (r) => r.arrayBuffer(),
        () => undefined,
      );
  }

  /** Keeps a drain at `drainEntriesPerSecond`. */
  private async pace(n: number): Promise<void> {
    const now = Date.now();
    if (this.drainStartedAt === 0) {
      this.drainStartedAt = now;
      this.drained = 0;
    }
    this.drained += n;
    const dueAt = this.drainStartedAt + (this.drained / this.drainRate) * 1_000;
    if (dueAt > now) await new Promise((r) => setTimeout(r, dueAt - now));
  }
}

/** An entry's poll time (its `ts` field), 0 when it has none. */
function entryTs(fields: readonly string[] | null | undefined): number {
  if (!fields) return 0;
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === 'ts') return Number(fields[i + 1]) || 0;
  return 0;
}
