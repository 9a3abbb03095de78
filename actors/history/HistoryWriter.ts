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
import { decodeEntry, OutboxFormatError, toLine } from './outbox.js';

/** The Redis names this writer uses (from the key table). */
export const HISTORY_KEYS = {
  /** The outbox stream (c2m and model_set append to it once a consumer group made it). */
  stream: KEYS.outbox,
  /** channel:type:point → model:name, as site_load writes it (to historize model measurements). */
  mapping: KEYS.mappingC2m,
  /** The consumer group of a backend. */
  group: (backend: string) => `history:${backend}`,
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
  /** How long accepted batches are kept (as id ranges) to write again after a failure; at least 10 s. */
  readonly windowMs?: number;
  /** Entries a second while draining a backlog (new entries keep arriving meanwhile). */
  readonly drainEntriesPerSecond?: number;
  /** Raw channel points (default true). */
  readonly channels?: boolean;
  /** Model values: calculated ones (model_set) and measurements mapped from channel points (default true). */
  readonly models?: boolean;
  /** How often the c2m mapping is read again (a site reload changes it); it is also read at every connect. */
  readonly mappingRefreshMs?: number;
  readonly gzipThreshold?: number;
  readonly timeoutMs?: number;
  readonly backoff?: BackoffPolicy;
}

/** Transient to the machine: an outage, retried with backoff, not a restart. */
export class HistoryOutageError extends OutboxOutageError {}

interface WindowBatch {
  at: number;
  readonly first: string;
  readonly last: string;
}

export class HistoryWriter {
  readonly stream: string;
  readonly group: string;
  private readonly outbox: OutboxConsumer;
  private readonly max: number;
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

  constructor(
    private readonly redis: Redis,
    private readonly opts: HistoryWriterOptions,
    private readonly log: Logger,
  ) {
    this.stream = opts.stream ?? HISTORY_KEYS.stream;
    this.group = HISTORY_KEYS.group(opts.backend);
    this.outbox = new OutboxConsumer(redis, this.stream, this.group, opts.consumer ?? 'writer');
    this.max = opts.batchMaxEntries ?? 500;
    this.batchMaxMs = opts.batchMaxMs ?? 200;
    this.windowMs = Math.max(10_000, opts.windowMs ?? 15_000);
    this.drainRate = opts.drainEntriesPerSecond ?? 5_000;
    this.influx = new InfluxDB({ url: opts.url, token: opts.token ?? 'voltage', timeout: opts.timeoutMs ?? 5_000 });
  }

  /** The group exists (from the stream's start: a new backend writes the whole backlog) and the database answers. */
  async connect(): Promise<void> {
    await this.outbox.ensureGroup();
    await this.readMapping();
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
    let first = this.window[0]!.first;
    let last = this.window[0]!.last;
    for (const w of this.window) {
      if (compareIds(w.first, first) < 0) first = w.first;
      if (compareIds(w.last, last) > 0) last = w.last;
    }
    let n = 0;
    for (let from = first; ; ) {
      const entries = (await this.redis.xrange(this.stream, from, last, 'COUNT', this.max)) as StreamEntries;
      if (entries.length === 0) break;
      await this.write(entries);
      n += entries.length;
      if (entries.length < this.max) break;
      from = `(${entries[entries.length - 1]![0]}`;
    }
    const now = Date.now();
    for (const w of this.window) w.at = now;
    this.log.info({ entries: n }, `wrote the last ${this.windowMs} ms of history again after the database came back`);
    return n;
  }

  /** Reads one batch (pending ones first), writes it, acknowledges it. */
  async writeBatch(mode: BatchMode): Promise<BatchResult> {
    const entries = await this.read(mode);
    if (entries.length === 0) return { entries: 0, samples: 0, skipped: 0, full: false };
    let result: { samples: number; skipped: number };
    try {
      result = await this.write(entries);
    } catch (e) {
      this.outbox.pendingMayExist = true;
      throw e;
    }
    await this.redis.xack(this.stream, this.group, ...entries.map(([id]) => id));
    const now = Date.now();
    let first = entries[0]![0];
    let last = first;
    for (const [id] of entries) {
      if (compareIds(id, first) < 0) first = id;
      if (compareIds(id, last) > 0) last = id;
    }
    this.window.push({ at: now, first, last });
    while (this.window.length > 0 && this.window[0]!.at < now - this.windowMs) this.window.shift();
    if (mode === 'drain') await this.pace(entries.length);
    else this.drainStartedAt = 0;
    return { entries: entries.length, ...result, full: entries.length >= this.max };
  }

  async close(): Promise<void> {
    // Nothing is buffered between batches: a batch's WriteApi is disposed after its flush.
  }

  private async read(mode: BatchMode): Promise<StreamEntries> {
    if (mode === 'drain') return this.outbox.next(this.max);
    if (this.outbox.pendingMayExist) {
      const pending = await this.outbox.next(this.max);
      if (pending.length > 0) return pending;
    }
    // Live: wait for the first entry up to batchMaxMs, then fill until full or the time is up.
    const deadline = Date.now() + this.batchMaxMs;
    const out: StreamEntries = [];
    while (out.length < this.max) {
      const left = deadline - Date.now();
      if (left < 1) break;
      const got = await this.outbox.read(this.max - out.length, left, '>');
      if (got.length === 0) break;
      out.push(...got);
    }
    return out;
  }

  /** Line protocol for the entries, written in one gzipped request. */
  private async write(entries: StreamEntries): Promise<{ samples: number; skipped: number }> {
    if (Date.now() - this.mappingReadAt > (this.opts.mappingRefreshMs ?? 60_000)) await this.readMapping();
    const lines: string[] = [];
    const channels = this.opts.channels !== false;
    const models = this.opts.models !== false;
    let skipped = 0;
    for (const [id, fields] of entries) {
      // A trimmed entry read from the pending list comes back with no fields.
      if (!fields || fields.length === 0) continue;
      try {
        for (const s of decodeEntry(fields)) {
          if (s.series.kind === 'model') {
            if (models) lines.push(toLine(s));
            continue;
          }
          if (s.series.kind === 'alarm') {
            lines.push(toLine(s)); // alarm events are kept as events whatever the switches
            continue;
          }
          if (channels) lines.push(toLine(s));
          const target = models ? this.mapping.get(`${s.series.channel}:${s.series.type}:${s.series.point}`) : undefined;
          if (target) lines.push(toLine({ ...s, series: { kind: 'model', model: target.model, name: target.name } }));
        }
      } catch (e) {
        if (!(e instanceof OutboxFormatError)) throw e;
        skipped += 1;
        this.log.warn({ entry: id, err: e.message }, 'skipped an outbox entry that is not in the outbox format');
      }
    }
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
      api.writeRecords(lines);
      try {
        await api.flush();
      } catch (e) {
        throw new HistoryOutageError(`the history database at ${this.opts.url} did not accept ${lines.length} samples: ${errorMessage(e)}`);
      } finally {
        api.dispose();
      }
    }
    return { samples: lines.length, skipped };
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
