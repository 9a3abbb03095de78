/**
 * Binds historyMachine to Redis and a history database: reads the outbox
 * stream through its own consumer group (at-least-once), turns entries into
 * line protocol (lines.ts, outbox.ts), writes batches gzipped with
 * @influxdata/influxdb-client's transport, and XACKs a batch only after the
 * database accepted it. A batch that fails stays pending in the group, and its
 * body is held and sent again as it is after the backoff.
 *
 * Every entry is encoded once per writer, in stream order: the encoder's
 * quality notes, the KeepFilter (intervals, heartbeats) and the tiers' marks
 * follow the stream, so a batch encoded is never encoded again (its body is
 * what is retried), and the KeepFilter's state is read from Redis only before
 * the first entry is encoded. While the database is down (the machine's
 * backoff: prepareBacklog), the writer goes on reading the outbox through its
 * group and encodes and gzips the backlog ahead into held batches, up to
 * prepareMaxBytes of bodies (past it the rest waits in the outbox), when the
 * runtime has CPU to spare, the window's own batches first (encoded as the
 * rewrite would, for the rewrite if one is owed: that is known only once the
 * database answers; dropped when the window changes); once it answers, the
 * window is written again first if it is owed (below), then the held batches in order,
 * pipelined (writesInFlight) and paced as a drain, each acknowledged in order
 * once accepted. Held entries stay pending, unacknowledged: a writer that
 * dies with them leaves them in the group for the next one (read from id 0).
 * After a failure the pending entries read again are only those after the
 * newest one held (OutboxConsumer.pendingAfter): ones delivered and lost on
 * the way. The quality law holds for held bodies: each carries the quality
 * where the encoder's note, made from the lines before it in the same order,
 * said so, and those lines are written before it or, if the database may have
 * lost them, again in the window, which carries the first quality of each
 * series; what is encoded after a failure carries it too (resetQuality).
 *
 * The recent window: VictoriaMetrics 1.79 loses roughly the last 5 s it had
 * acknowledged when it is killed. The writer remembers, per accepted batch, the
 * range of stream ids it held and when it was accepted — ids, not lines, so the
 * window costs a few bytes a batch — and after a failure reads the window's
 * ranges again from the stream (XRANGE) and writes them once more before
 * anything else. Deduplication (-dedup.minScrapeInterval=1ms) makes the repeat
 * harmless. The window is pruned only on success, so a long outage does not
 * age it away, and its entries, acknowledged, are held from the outbox's trim
 * of what every group has read (`hold:{group}` in the outbox's stats hash).
 * The window is written again only when the database may have lost it: when
 * the process that answers after the failure is not the one that answered
 * before (VictoriaMetrics' /metrics: its start second, with an uptime of at
 * least 2 s when first seen, so that a restart within the same second cannot
 * pass for it), or when that cannot be told (another backend), or when an
 * earlier rewrite did not finish. A timeout or a network outage with the same
 * process behind it lost nothing it had accepted, and the drain starts at once.
 *
 * A restart between two batches, with no write failing (a site whose batches
 * are seconds apart, a quick restart by a service manager): while batches flow
 * the writer reads the process from /metrics beside the writes, at most every
 * DB_CHECK_MS (2 s; a 33 kB answer, ~2 ms of the runtime's CPU and 0.5 ms of
 * VictoriaMetrics' a read, 0.1 % and 0.02 % of a core), and
 * when another process answers it writes the window again as after a failure
 * (the machine's `restarted` result leads to its rewriting state). The law that
 * makes this lose nothing, whatever the check period and however long the
 * restart took: a batch accepted at time a leaves the window only once a check
 * started at or after a + windowMs found the process that accepted it. A kill
 * at K loses what was accepted after K - L (L ~5 s for VictoriaMetrics 1.79);
 * such a batch, with a > K - L, would need a check at c >= a + windowMs >
 * K + (windowMs - L) > K finding the killed process alive, which cannot be,
 * so it is still in the window when the restart is seen. Hence windowMs must
 * exceed L (10 s against ~5 s); the check period only sets how soon the loss
 * is repaired and how far past windowMs the window reaches (windowMs + the
 * period + the check's own time, ~12 s of ids at 2 s). A check that cannot tell
 * (an error, a timeout) confirms nothing, and the window grows until one can,
 * for at most WINDOW_UNCONFIRMED_MAX_MS (then it is pruned by age alone, as for a
 * backend whose process cannot be read, which is written again after every failure).
 * Limits: entries the outbox's byte bound dropped are gone from the window too
 * (counted as dropped by c2m).
 *
 * The cost a sample (200k lines/s at a 100k points/s site, each point also
 * as its model value): channel entries go straight from the outbox text to
 * line protocol (lines.ts: no object a point, the measurement and tags of a
 * series made once), a batch is one string gzipped at level 1 off the event
 * loop, and sent with the client's transport (its url, token, timeout and
 * HTTP errors; its WriteApi would gzip at level 6 and take the batch a line
 * at a time). Batches of a backlog are pipelined (writesInFlight) and
 * acknowledged in order.
 *
 * It never drops an entry it could not write; it drops (acknowledges) only
 * entries that are not in the outbox format, and counts and logs them.
 */
import { promisify } from 'node:util';
import { gzip as gzipCb } from 'node:zlib';
import { InfluxDB } from '@influxdata/influxdb-client';
import type { BatchMode, BatchResult } from '../../machines/historyMachine.js';
import type { BackoffPolicy } from '../../runtime/backoff.js';
import { errorMessage } from '../../runtime/errors.js';
import type { Logger } from '../../runtime/logger.js';
import { awaitedLater } from '../../runtime/reporter.js';
import type { VoltageRedis } from '../../runtime/redis/voltageRedis.js';
import { KEYS } from '../../runtime/redis/keys.js';
import { compareIds, OutboxConsumer, OutboxOutageError, type StreamEntries } from '../outbox/consumer.js';
import { databaseProcess, type DatabaseProcess, healthy } from '../../runtime/victoriaServer.js';
import { KeepFilter, type KeepPolicies } from './keep.js';
import { dueBuckets, initialMarks, TIER_DELAY_MS, TIERS, type Tier, type TierMarks, writeTierBucket } from './tiers.js';
import { LineBuffer, LineEncoder } from './lines.js';
import { decodeEntry, OutboxFormatError, seriesId, toLine, type HistorySample } from './outbox.js';

const gzip = promisify(gzipCb);

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
  /** Batches of a backlog sent before the oldest is awaited (default 3); each is acknowledged in order once accepted. */
  readonly writesInFlight?: number;
  /** How long accepted batches are kept (as id ranges) to write again after a failure; at least 10 s. */
  readonly windowMs?: number;
  /** Entries a second while draining a backlog (new entries keep arriving meanwhile). */
  readonly drainEntriesPerSecond?: number;
  /**
   * While the database is down, the backlog is read and encoded ahead into gzipped bodies held in memory up to this many
   * bytes (default PREPARE_MAX_BYTES; 0: none), sent first once it answers.
   */
  readonly prepareMaxBytes?: number;
  /** Raw channel points (default true). */
  readonly channels?: boolean;
  /** Model values: calculated ones (model_set) and measurements mapped from channel points (default true). */
  readonly models?: boolean;
  /**
   * The quality beside a channel point's or mapped model value's value: where it changed, on a series' first value after a
   * start, a failure or a database restart, in the window written again, and otherwise at least this often (poll time;
   * default 60 s). 0: on every line. Quality marks (no value) and the other samples always carry it (lines.ts).
   */
  readonly qualityEveryMs?: number;
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
  /** While the writer is behind, a tier check at most this often (default TIER_CHECK_BEHIND_MS). */
  readonly tierCheckBehindMs?: number;
  /** How often the c2m mapping is read again (a site reload changes it), beside the writes; also at every connect (awaited at the first). */
  readonly mappingRefreshMs?: number;
  readonly gzipThreshold?: number;
  readonly timeoutMs?: number;
  readonly backoff?: BackoffPolicy;
}

/** VictoriaMetrics makes what it accepted searchable within about a second; tiers are computed from what was written at least this long ago. */
const SEARCHABLE_MS = 3_000;

/** Tier checks run every 5 s while the writer is caught up. */
const TIER_CHECK_MS = 5_000;
/**
 * While the writer is behind (draining a backlog, or its batch came back full: more is waiting), a tier check
 * runs at most once this often (so a writer never caught up still gets its tiers).
 */
const TIER_CHECK_BEHIND_MS = 60_000;

/** The quality beside a value at least this often a series, else where it changed (HistoryWriterOptions.qualityEveryMs). */
export const QUALITY_EVERY_MS = 60_000;

/** While batches flow, the database's process is read (its /metrics) at most this often, beside the writes: a restart with no failed write. */
const DB_CHECK_MS = 2_000;
/** A window not confirmed by any check for this long is pruned by age alone (checks that cannot tell must not hold the outbox forever). */
const WINDOW_UNCONFIRMED_MAX_MS = 60_000;

/**
 * Held bodies while the database is down (HistoryWriterOptions.prepareMaxBytes). A line of the bench's shape (a model value,
 * six decimals, ~65 bytes) gzips at level 1 to ~10 bytes, so 128 MB hold ~13M lines: a 60 s outage of a 100k points/s
 * site with each point kept twice, as its channel point and its model value (200k lines/s, ~120 MB), or ~2 minutes kept once.
 */
export const PREPARE_MAX_BYTES = 128 * 1024 * 1024;
/** A held batch waits this long to fill while the database is down (one read blocks at most PREPARE_BLOCK_MS: connect's commands queue behind it). */
const PREPARE_FILL_MS = 1_000;
const PREPARE_BLOCK_MS = 250;

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

/** A request body, gzipped at level 1 unless small (gzipThreshold). */
interface Body {
  readonly bytes: Buffer;
  readonly zipped: boolean;
  readonly lines: number;
}

/**
 * A batch encoded and not yet acknowledged, in stream order: held (prepared while the database was down, or sent and
 * refused: sent again as it is) or out (InFlight).
 */
interface Batch {
  readonly body: Promise<Body>;
  /** The body's bytes once gzipped (0 before). */
  size: number;
  readonly ids: readonly string[];
  readonly first: string;
  readonly last: string;
  readonly derived: readonly string[];
  /** The KeepFilter's state the batch leaves (kept in Redis beside its acknowledgement). */
  readonly dirty: ReadonlyArray<readonly [string, string]>;
  readonly samples: number;
  readonly skipped: number;
  readonly through: number;
}

/** A batch sent and not yet acknowledged. */
interface InFlight {
  readonly batch: Batch;
  readonly sent: Promise<void>;
}

/** A batch in line protocol: each line ends in '\n'. */
interface Encoded {
  readonly body: Buffer;
  /** The buffer the body is a view of: a spare for a later batch once the body has been sent. */
  readonly backing: Buffer;
  readonly lines: number;
  readonly skipped: number;
  /** The lines the KeepFilter made (interval values, heartbeats), kept in the window to write again. */
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
  /** Channel entries straight to line protocol, the c2m mapping's model values included. */
  private readonly encoder: LineEncoder;
  private mappingReadAt = 0;
  /** The generation of the mapping held (null: not known, read again every time). */
  private mappingGeneration: string | null = null;
  /** The c2m mapping being read again beside the writes (one read at a time); batches are encoded with the one held meanwhile. */
  private mappingTask: Promise<void> | undefined;
  private readonly writePath: string;
  private drained = 0;
  private readonly keep: KeepFilter;
  private readonly keepTrivial: boolean;
  private readonly keepGraceMs: number;
  /** Batches sent and not yet acknowledged, oldest first. */
  private inFlight: InFlight[] = [];
  /** Batches encoded and not sent (prepared while the database was down, or refused), oldest first: sent before anything is read. */
  private held: Batch[] = [];
  private readonly prepareMaxBytes: number;
  /** Reading and encoding ahead while the database is down (one task at a time), and the request to stop it. */
  private preparing: Promise<void> | undefined;
  private stopPreparing = false;
  /** A fault of the preparing that is not an outage (a bug): thrown by the next connect. */
  private prepareError: unknown;
  /** The KeepFilter's state was read from Redis (once, before the first entry is encoded). */
  private keepRestored = false;
  /**
   * The window's bodies, encoded while the database was down (prepareBacklog), for the rewrite if one is owed once it answers
   * (whether the process changed is known only then): dropped when the window changes or is written.
   */
  private windowBodies: { readonly bodies: ReadonlyArray<Promise<Body>>; readonly entries: number; readonly size: number } | undefined;
  /** Batches and entries prepared while the database was down. */
  readonly prepared = { batches: 0, entries: 0 };
  private readonly writesInFlight: number;
  /** The last batch's body, in bytes (the next one's buffer starts at about that size). */
  private bodyBytes = 1 << 16;
  /**
   * Body buffers whose batches were sent, used again: a drain's batch is megabytes (50,000 lines), and a new
   * one a batch, outside the heap, made the runtime's capped heap collect more often.
   */
  private readonly spares: Buffer[] = [];
  private marks: TierMarks | undefined;
  /** Every poll stamped at or before this has been written (while caught up: when the last read began). */
  private writtenThrough = 0;
  /** When the last tier check started (0: none yet). */
  private tierCheckedAt = 0;
  /** The tier check running beside the writes (one at a time); its failure is thrown by the next batch. */
  private tierTask: Promise<void> | undefined;
  private tierError: unknown;
  /** writtenThrough as it was at each batch: the database makes what it accepted searchable within ~1 s, so tiers use one a few seconds old. */
  private throughLog: Array<{ readonly at: number; readonly through: number }> = [];
  /** Tier buckets written lately: after a database failure they are computed and written again. */
  private recentTiers: Array<{ readonly tier: Tier; readonly end: number; readonly at: number }> = [];
  /** The database's process as the last connect found it (undefined: not known). */
  private dbProcess: DatabaseProcess | undefined;
  /** The window must be written again at the next rewrite: the database restarted (or may have) since it accepted the window. */
  private rewriteOwed = false;
  /** When the last read of the process that found the one held began (0: none): the window keeps what was accepted after this - windowMs. */
  private dbConfirmedAt = 0;
  /** When the last check beside the writes began, and the check under way. */
  private dbCheckedAt = 0;
  private dbCheck: Promise<void> | undefined;
  /** Another process, found by a check beside the writes: the next batch settles those out and asks for the window to be written again. */
  private dbSuccessor: DatabaseProcess | undefined;
  /** Rewrites of the window done and skipped (the database had not restarted). */
  readonly rewrites = { written: 0, skipped: 0 };

  constructor(
    private readonly redis: VoltageRedis,
    private readonly opts: HistoryWriterOptions,
    private readonly log: Logger,
  ) {
    this.stream = opts.stream ?? KEYS.outbox;
    this.group = KEYS.historyGroup(opts.backend);
    this.outbox = new OutboxConsumer(redis, this.stream, this.group, opts.consumer ?? 'writer');
    this.maxEntries = opts.batchMaxEntries ?? 500;
    this.maxLines = opts.batchMaxLines ?? 50_000;
    this.linesPerEntry = this.maxLines / 16;
    this.batchMaxMs = opts.batchMaxMs ?? 200;
    this.windowMs = Math.max(10_000, opts.windowMs ?? 10_000);
    this.drainRate = opts.drainEntriesPerSecond ?? 5_000;
    this.writesInFlight = Math.max(1, opts.writesInFlight ?? 3);
    this.prepareMaxBytes = opts.prepareMaxBytes ?? PREPARE_MAX_BYTES;
    // Pending entries are read after the newest one held, not from id 0 (the header).
    this.outbox.pendingAfter = '0';
    this.keep = new KeepFilter(opts.keep ?? new Map());
    this.keepTrivial = this.keep.trivial;
    this.keepGraceMs = opts.keepGraceMs ?? 5_000;
    this.influx = new InfluxDB({ url: opts.url, token: opts.token ?? 'voltage', timeout: opts.timeoutMs ?? 5_000 });
    const q = encodeURIComponent;
    this.writePath = `/api/v2/write?org=${q(opts.org ?? 'voltage')}&bucket=${q(opts.bucket ?? 'voltage')}&precision=ms`;
    const policies = [...(opts.keep ?? new Map())].filter(([, k]) => k.mode !== 'on-change' || k.maxGapMs !== undefined).map(([id]) => id);
    this.encoder = new LineEncoder({
      channels: opts.channels !== false,
      models: opts.models !== false,
      policies,
      qualityEveryMs: opts.qualityEveryMs ?? QUALITY_EVERY_MS,
    });
  }

  /** The group exists (from the stream's start: a new backend writes the whole backlog) and the database answers. */
  async connect(): Promise<void> {
    await this.outbox.ensureGroup();
    // Before the mapping (100k entries at a 100k points/s site: a quarter of a second of the runtime's time), which each retry
    // of an outage read again for nothing.
    if (!(await healthy(this.opts.url))) throw new HistoryOutageError(`the history database at ${this.opts.url} does not answer /health`);
    // It answers: what was prepared meanwhile is sent first (writeBatch), nothing more is read ahead.
    await this.endPreparing();
    if (this.prepareError !== undefined) {
      const e = this.prepareError;
      this.prepareError = undefined;
      throw e;
    }
    if (this.held.length > 0) {
      const bytes = this.held.reduce((n, b) => n + b.size, 0);
      const lines = this.held.reduce((n, b) => n + b.samples, 0);
      this.log.info(
        { batches: this.held.length, entries: this.held.reduce((n, b) => n + b.ids.length, 0), lines, bytes },
        'the history database answers: the batches held meanwhile are sent first',
      );
    }
    await this.readyToEncode();
    await this.dbCheck; // one read at a time; its finding is superseded by this one
    const checkedAt = Date.now();
    const now = await databaseProcess(this.opts.url, this.opts.timeoutMs ?? 5_000);
    // The window holds batches accepted by the process seen last; another one answers (or it cannot be told): they may be lost.
    if (this.window.length > 0 && !sameProcess(this.dbProcess, now)) this.rewriteOwed = true;
    this.dbProcess = now;
    this.dbConfirmedAt = checkedAt;
    this.dbCheckedAt = checkedAt;
    this.dbSuccessor = undefined;
  }

  /** The mapping (at the first connect; at a reconnection beside the writes) and the KeepFilter's state (once), before encoding. */
  private async readyToEncode(): Promise<void> {
    // Read first at the first connect; at a reconnection beside the writes (usually the generation only: readMapping).
    if (this.mappingReadAt === 0) await this.readMapping();
    else this.refreshMapping();
    // Once: the state in memory follows every entry encoded, held ones included; Redis has only the acknowledged ones'.
    if (!this.keepTrivial && !this.keepRestored) {
      this.keep.restore(await this.redis.history.keepState(this.opts.backend));
      this.keepRestored = true;
    }
  }

  /**
   * The machine's backoff (a write failed, or the database does not answer): reads the outbox on through the group and
   * encodes and gzips it into held batches while the runtime has the CPU to spare, up to prepareMaxBytes; connect stops it
   * once the database answers. A Redis outage ends it (the next backoff starts it again).
   */
  prepareBacklog(): void {
    if (this.preparing !== undefined || this.prepareMaxBytes <= 0) return;
    this.stopPreparing = false;
    this.preparing = this.prepare()
      .catch((e: unknown) => {
        if (e instanceof OutboxOutageError) this.log.debug({ err: e }, 'stopped preparing the history backlog: Redis does not answer');
        else this.prepareError ??= e;
      })
      .finally(() => {
        this.preparing = undefined;
      });
  }

  private async endPreparing(): Promise<void> {
    this.stopPreparing = true;
    await this.preparing;
  }

  private async prepare(): Promise<void> {
    await this.readyToEncode();
    if (this.windowBodies === undefined && this.window.some((w) => w.first !== '')) {
      // First the window, which a database that restarted needs again before anything else.
      const bodies: Array<Promise<Body>> = [];
      let size = 0;
      const entries = await this.encodeWindow(
        async (body) => {
          bodies.push(body);
          size += (await body).bytes.length;
        },
        () => this.stopPreparing,
      );
      if (entries !== undefined) this.windowBodies = { bodies, entries, size };
    }
    while (!this.stopPreparing && (this.windowBodies?.size ?? 0) + this.held.reduce((n, b) => n + b.size, 0) < this.prepareMaxBytes) {
      const max = this.max;
      const entries = await this.read('live', max, PREPARE_FILL_MS, PREPARE_BLOCK_MS);
      if (entries.length === 0) continue;
      // Behind: intervals close and heartbeats are due up to the batch's newest poll, as in a drain.
      let clock = 0;
      for (const [, f] of entries) clock = Math.max(clock, entryTs(f));
      const batch = this.batchOf(entries, await this.encode(entries, clock - this.keepGraceMs), clock - 1);
      this.held.push(batch);
      this.prepared.batches += 1;
      this.prepared.entries += entries.length;
      await batch.body; // one gzip at a time, and its size counted before the next read
    }
  }

  /** A batch of the entries just encoded (in stream order): held entries are read again only past it (pendingAfter). */
  private batchOf(entries: StreamEntries, encoded: Encoded, through: number): Batch {
    let first = entries[0]?.[0] ?? '';
    let last = first;
    for (const [id] of entries) {
      if (compareIds(id, first) < 0) first = id;
      if (compareIds(id, last) > 0) last = id;
    }
    if (last !== '' && compareIds(last, this.outbox.pendingAfter ?? '0') > 0) this.outbox.pendingAfter = last;
    const batch: Batch = {
      body: this.pack(encoded),
      size: 0,
      ids: entries.map(([id]) => id),
      first,
      last,
      derived: encoded.derived,
      dirty: this.keepTrivial ? [] : this.keep.takeDirty(),
      samples: encoded.lines,
      skipped: encoded.skipped,
      through,
    };
    batch.body.then(
      (b) => {
        batch.size = b.bytes.length;
      },
      () => undefined, // awaited where it is sent
    );
    return batch;
  }

  /** Sends a batch (held or new) and puts it out; it is acknowledged by settle. */
  private send(batch: Batch): void {
    const sent = awaitedLater(batch.body.then((b) => this.post(b))); // awaited in settle
    this.inFlight.push({ batch, sent });
  }

  /**
   * Reads the database's process beside the writes, at most every DB_CHECK_MS and one read at a time, when it can be told (VictoriaMetrics);
   * the same process confirms the window up to the read's start, another one is a restart (dbSuccessor), no answer confirms nothing.
   */
  private checkDatabase(now: number): void {
    const before = this.dbProcess;
    if (before === undefined || this.dbCheck !== undefined || this.dbSuccessor || now < this.dbCheckedAt + DB_CHECK_MS) return;
    this.dbCheckedAt = now;
    this.dbCheck = databaseProcess(this.opts.url, this.opts.timeoutMs ?? 5_000)
      .then((p) => {
        if (p === undefined || this.dbProcess !== before) return; // cannot tell, or a connect read it meanwhile
        if (sameProcess(before, p)) {
          this.dbProcess = p;
          this.dbConfirmedAt = now;
        } else this.dbSuccessor = p;
      })
      .finally(() => {
        this.dbCheck = undefined;
      });
  }

  /** Reads the mapping again beside the writes, unless a read is under way; a failed read keeps the one held (the next is due at once). */
  private refreshMapping(): void {
    this.mappingTask ??= this.readMapping()
      .catch((e: unknown) => this.log.warn({ err: e }, 'could not read the c2m mapping again: the one held is used meanwhile'))
      .finally(() => {
        this.mappingTask = undefined;
      });
  }

  /**
   * Reads the mapping unless its generation is the one held (site_load moves it on): at a 100k points/s site reading it
   * (100k entries) and making the encoder's heads again is about a second of the runtime's thread, which held the rewrite and
   * the drain back at each reconnection and every minute. The generation is read first, so a load in between reads again next time.
   */
  private async readMapping(): Promise<void> {
    if (this.opts.models === false) return;
    const generation = await this.outbox.mappingGeneration();
    if (generation === null || generation !== this.mappingGeneration) {
      this.encoder.setMapping(await this.outbox.readMapping());
      this.mappingGeneration = generation;
    }
    this.mappingReadAt = Date.now();
  }

  /** Writes the recent window again (after a failure) unless the database kept it (the same process); returns the entries written. */
  async rewriteWindow(): Promise<number> {
    if (!this.rewriteOwed) {
      this.windowBodies = undefined;
      this.rewrites.skipped += 1;
      this.log.info('the history database did not restart: its recent window is not written again');
      return 0;
    }
    const n = await this.writeWindowAgain();
    // Cleared only once the whole window is written: a rewrite cut short is owed at the next connect, whatever process answers.
    this.rewriteOwed = false;
    this.rewrites.written += 1;
    return n;
  }

  private async writeWindowAgain(): Promise<number> {
    if (this.window.length === 0) return 0;
    const derived = this.window.flatMap((w) => w.derived);
    if (derived.length > 0) await this.sendLines(derived);
    // Tier lines written in the window may be lost too: their buckets are computed again.
    if (this.marks) {
      for (const t of this.recentTiers) this.marks[t.tier.name] = Math.min(this.marks[t.tier.name], t.end - t.tier.ms);
      this.recentTiers = [];
    }
    // Pipelined as a backlog's batches are (up to writesInFlight out): nothing is acknowledged here, so order does not matter.
    const out: Array<Promise<void>> = [];
    const send = async (body: Promise<Body>) => {
      out.push(awaitedLater(body.then((b) => this.post(b)))); // awaited below
      if (out.length >= this.writesInFlight) await out.shift();
    };
    let n = 0;
    try {
      // Encoded while the database was down (prepareBacklog), if the window has not changed since.
      const ready = this.windowBodies;
      if (ready) {
        for (const body of ready.bodies) await send(body);
        n = ready.entries;
      } else n = (await this.encodeWindow(send, () => false)) ?? 0;
      while (out.length > 0) await out.shift();
    } finally {
      // A failure leaves none out behind it.
      await Promise.allSettled(out);
    }
    this.windowBodies = undefined;
    const now = Date.now();
    for (const w of this.window) w.at = now;
    this.log.info({ entries: n }, `wrote the last ${this.windowMs} ms of history again after the database came back`);
    return n;
  }

  /**
   * The window's entries read again from the stream (XRANGE) and encoded, each body given to `each` in order; undefined when
   * `stop` cut it short. The encoder's quality notes are reset before and after: the window's lines carry the first quality of
   * each series and every change again (the database may have lost them), and so do the batches encoded after it.
   */
  private async encodeWindow(each: (body: Promise<Body>) => Promise<void>, stop: () => boolean): Promise<number | undefined> {
    const ranges = this.window.filter((w) => w.first !== '');
    if (ranges.length === 0) return 0;
    let first = ranges[0]!.first;
    let last = ranges[0]!.last;
    for (const w of ranges) {
      if (compareIds(w.first, first) < 0) first = w.first;
      if (compareIds(w.last, last) > 0) last = w.last;
    }
    this.encoder.resetQuality();
    let n = 0;
    try {
      for (let from = first; ; ) {
        if (stop()) return undefined;
        const max = this.max;
        const entries = await this.redis.outbox.range(this.stream, from, last, max);
        if (entries.length === 0) break;
        await each(this.pack(await this.encode(entries, undefined)));
        n += entries.length;
        if (entries.length < max) break;
        from = `(${entries[entries.length - 1]![0]}`;
      }
    } finally {
      this.encoder.resetQuality();
    }
    return n;
  }

  /**
   * Reads one batch (pending ones first), encodes it and sends it. Batches of
   * new entries are pipelined: while a batch is full (a backlog), up to
   * `writesInFlight` of them are sent before the oldest is awaited, so that
   * encoding the next overlaps the database taking the last. Each is
   * acknowledged (XACK, its keep state, the window) only once it and every
   * batch before it were accepted, in the order they were read; a short batch
   * (caught up) settles every batch out before it returns. A batch read from
   * the pending list is settled before the next read, which would read it
   * again otherwise. Returns what was acknowledged during the call.
   */
  async writeBatch(mode: BatchMode): Promise<BatchResult> {
    if (this.tierError !== undefined) {
      const e = this.tierError;
      this.tierError = undefined;
      await this.abandon();
      throw e;
    }
    const successor = this.dbSuccessor;
    if (successor) {
      // Every batch out settles first, so that the window written again holds all the killed process may have lost.
      const done = await this.settle(0);
      this.dbSuccessor = undefined;
      this.dbProcess = successor; // the window is confirmed (dbConfirmedAt) only by a later check that finds it again
      this.rewriteOwed = true;
      this.log.warn('the history database restarted between two batches: its recent window is written again');
      return { ...done, full: false, restarted: true };
    }
    const readStart = Date.now();
    this.checkDatabase(readStart);
    await this.endPreparing(); // not running once connected; a bug otherwise would encode out of order
    if (this.held.length > 0) {
      // Held batches first, in order, pipelined and paced as a drain; nothing is read until they are out.
      const batch = this.held.shift()!;
      this.send(batch);
      const result = await this.settle(this.held.length > 0 ? this.writesInFlight - 1 : 0);
      await this.pace(batch.ids.length);
      return { ...result, full: true };
    }
    const max = this.max;
    const fromPending = this.outbox.pendingMayExist;
    let entries: StreamEntries;
    try {
      entries = await this.read(mode, max);
    } catch (e) {
      await this.abandon();
      throw e;
    }
    const full = entries.length >= max;
    if (entries.length === 0 && this.keepTrivial && (!this.opts.tiers || Date.now() < this.tierCheckedAt + TIER_CHECK_MS))
      return { ...(await this.settle(0)), full: false };
    // Up to when intervals close and heartbeats are due: live and caught up, the clock; behind, the batch's newest poll.
    let clock = Date.now();
    if (mode === 'drain' || full) {
      clock = 0;
      for (const [, f] of entries) clock = Math.max(clock, entryTs(f));
    }
    let encoded: Encoded;
    try {
      encoded = await this.encode(entries, clock - this.keepGraceMs);
    } catch (e) {
      await this.abandon();
      throw e;
    }
    // Every poll stamped up to `through` is written once this batch is: live and caught up, up to the read's start; behind, the batch's newest poll.
    this.send(this.batchOf(entries, encoded, mode === 'live' && !full && !fromPending ? readStart : entries.length > 0 ? clock - 1 : 0));
    const result = await this.settle(full && !fromPending ? this.writesInFlight - 1 : 0);
    const now = Date.now();
    // Behind (draining a backlog, or this batch came back full: a backlog again), tier checks run less often: their queries and the
    // buckets they write back take the database's CPU that the drain needs (a 1 m bucket at 100k series reads 6M samples and writes
    // 600k); the buckets are computed later, none lost.
    const behind = mode === 'drain' || full;
    const checkEveryMs = behind ? (this.opts.tierCheckBehindMs ?? TIER_CHECK_BEHIND_MS) : TIER_CHECK_MS;
    if (this.opts.tiers && now >= this.tierCheckedAt + checkEveryMs && this.tierTask === undefined) {
      // Beside the writes, not before the next batch: at 100k points/s a 1 m bucket is ~200 queries, seconds of the database's time.
      this.tierTask = this.writeTiers(now)
        .catch((e: unknown) => {
          this.tierError ??= e;
        })
        .finally(() => {
          this.tierTask = undefined;
        });
    }
    if (mode === 'drain') await this.pace(entries.length);
    else this.drainStartedAt = 0;
    return { ...result, full };
  }

  /** Awaits the oldest batches out until at most `keep` are; acknowledges each. A refused one fails the call, after every other has settled. */
  private async settle(keep: number): Promise<Omit<BatchResult, 'full'>> {
    const done = { entries: 0, samples: 0, skipped: 0 };
    while (this.inFlight.length > keep) {
      const { batch: b, sent } = this.inFlight[0]!;
      try {
        await sent;
      } catch (e) {
        await this.abandon();
        throw e;
      }
      const now = Date.now();
      const accepted: WindowBatch = { at: now, first: b.first, last: b.last, derived: b.derived };
      try {
        await this.redis.history.saveKeepState(this.opts.backend, b.dirty);
        if (b.ids.length > 0 || b.derived.length > 0) {
          this.window.push(accepted); // first '': derived lines only
          this.windowBodies = undefined; // encoded for the window before it
        }
        // Pruned only as far as a check found the same process windowMs after (the law in the header), when the process can be told.
        const horizon = this.dbProcess === undefined ? now : Math.max(now - WINDOW_UNCONFIRMED_MAX_MS, Math.min(now, this.dbConfirmedAt));
        while (this.window.length > 0 && this.window[0]!.at < horizon - this.windowMs) this.window.shift();
        if (b.ids.length > 0) await this.acknowledge(b.ids);
      } catch (e) {
        // Redis did not take it: the batch stays out first, so abandon holds it and it is sent (and acknowledged) again: its
        // entries, pending behind the read cursor, are not read again in this writer. The database counts it once.
        const i = this.window.indexOf(accepted);
        if (i >= 0) this.window.splice(i, 1);
        await this.abandon();
        throw e;
      }
      this.inFlight.shift();
      this.writtenThrough = Math.max(this.writtenThrough, b.through);
      if (this.opts.tiers) this.throughLog.push({ at: now, through: this.writtenThrough });
      done.entries += b.ids.length;
      done.samples += b.samples;
      done.skipped += b.skipped;
    }
    return done;
  }

  /**
   * XACKs a batch's entries, and holds the window's from the outbox's trim in the same round trip
   * (`hold:{group}` in its stats hash, the oldest id the window may read again): acknowledged, they
   * would otherwise be trimmed, and the window written again after a failure would find them gone.
   */
  private async acknowledge(ids: readonly string[]): Promise<void> {
    await this.redis.outbox.ackHolding(this.stream, this.group, ids, this.window.find((w) => w.first !== '')?.first);
  }

  /**
   * After a failure: every batch out settles and none is acknowledged; their entries stay pending, and their bodies are held
   * to be sent again first, as they are (not encoded again: the encoder's state has moved past them). Entries delivered
   * and not held (a reply lost on the way) are read again: the pending ones after the newest held (pendingAfter).
   */
  private async abandon(): Promise<void> {
    const out = this.inFlight;
    this.inFlight = [];
    this.outbox.pendingMayExist = true;
    // Their lines may not be stored: the next values encoded carry their series' quality again.
    this.encoder.resetQuality();
    await Promise.allSettled(out.map((b) => b.sent));
    this.held = [...out.map((b) => b.batch), ...this.held];
    await this.tierTask;
  }

  async close(): Promise<void> {
    // Batches held or still out are not acknowledged: their entries stay pending and are read again by the next writer.
    await this.endPreparing();
    await this.abandon();
    await this.mappingTask;
  }

  /** Entries a batch: batchMaxEntries, fewer when entries are big (batchMaxLines). */
  private get max(): number {
    return Math.max(1, Math.min(this.maxEntries, Math.floor(this.maxLines / this.linesPerEntry)));
  }

  /** Live: waits for entries up to `fillMs` (each read blocking at most `blockMs`), until full; a drain takes what is there. */
  private async read(mode: BatchMode, max: number, fillMs = this.batchMaxMs, blockMs = fillMs): Promise<StreamEntries> {
    if (mode === 'drain') return this.outbox.next(max);
    if (this.outbox.pendingMayExist) {
      const pending = await this.outbox.next(max);
      if (pending.length > 0) return pending;
    }
    // Live: wait for the first entry up to fillMs, then fill until full or the time is up (or the preparing is stopped).
    const deadline = Date.now() + fillMs;
    const out: StreamEntries = [];
    while (out.length < max && !(this.stopPreparing && this.preparing !== undefined)) {
      const left = deadline - Date.now();
      if (left < 1) break;
      const got = await this.outbox.read(max - out.length, Math.min(left, blockMs), '>');
      if (got.length === 0 && blockMs >= left) break;
      out.push(...got);
    }
    return out;
  }

  /**
   * Line protocol for the entries, with the derived lines of the KeepFilter when `clock` is given:
   * interval ends and heartbeats due by then (undefined: the window written again, whose derived
   * lines are written apart).
   */
  private async encode(entries: StreamEntries, clock: number | undefined): Promise<Encoded> {
    if (Date.now() - this.mappingReadAt > (this.opts.mappingRefreshMs ?? 60_000)) this.refreshMapping();
    // The body's bytes, sized from the last batch's.
    const out = new LineBuffer(this.bodyBytes, this.spares.pop());
    const channels = this.opts.channels !== false;
    const models = this.opts.models !== false;
    let skipped = 0;
    const kept: HistorySample[] = [];
    const derived: HistorySample[] = [];
    const line = (s: HistorySample) => out.line(toLine(s));
    const keep = (s: HistorySample) => {
      if (this.keepTrivial) return line(s);
      kept.length = 0;
      if (clock === undefined)
        this.keep.again(seriesId(s.series), s, kept); // the window again: taken before
      else this.keep.take(seriesId(s.series), s, kept, derived);
      for (const k of kept) line(k);
    };
    for (const [id, fields] of entries) {
      // A trimmed entry read from the pending list comes back with no fields.
      if (!fields || fields.length === 0) continue;
      const [length, lines] = [out.length, out.lines];
      try {
        const c = channelEntry(fields);
        if (c) {
          // Channel points and the model values they feed, straight from the text (lines.ts).
          for (const s of this.encoder.channelEntry(c.channel, c.ts, c.text, out)) keep(s);
          continue;
        }
        for (const s of decodeEntry(fields)) {
          if (s.series.kind === 'model') {
            if (models) keep(s);
          } else if (s.series.kind === 'alarm' || s.series.kind === 'command') {
            line(s); // alarm and command events are kept as events whatever the switches
          } else if (channels) keep(s); // not reached: channel entries take the encoder's way
        }
      } catch (e) {
        if (!(e instanceof OutboxFormatError)) throw e;
        out.rewind(length, lines);
        skipped += 1;
        this.log.warn({ entry: id, err: e }, 'skipped an outbox entry that is not in the outbox format');
      }
    }
    if (clock !== undefined && !this.keepTrivial) {
      const due: HistorySample[] = [];
      this.keep.due(clock, due);
      for (const d of due) line(d);
      derived.push(...due);
    }
    if (entries.length > 0) this.linesPerEntry = 0.5 * this.linesPerEntry + 0.5 * Math.max(1, out.lines / entries.length);
    this.bodyBytes = Math.max(1 << 16, out.length + (out.length >> 3));
    return { body: out.bytes(), backing: out.backing, lines: out.lines, skipped, derived: clock === undefined ? [] : derived.map(toLine) };
  }

  /** A batch's body; its buffer is a spare once gzip has read it (a small body is copied: the spare is written again). */
  private async pack(e: Encoded): Promise<Body> {
    const body = await this.zip(e.body, e.lines, true);
    if (this.spares.length <= this.writesInFlight) this.spares.push(e.backing);
    return body;
  }

  private async sendLines(lines: readonly string[]): Promise<void> {
    await this.post(await this.zip(lines.length === 0 ? Buffer.alloc(0) : Buffer.from(`${lines.join('\n')}\n`), lines.length, false));
  }

  /**
   * Lines (each ending in '\n') gzipped at level 1 here rather than by the
   * client (zlib's default level 6): at 200k lines/s that is 0.4 instead of
   * 1.1 µs a line, about an eighth of a core.
   */
  private async zip(raw: Buffer, lines: number, copy: boolean): Promise<Body> {
    const zipped = raw.length > (this.opts.gzipThreshold ?? 1_000);
    return { bytes: zipped ? await gzip(raw, { level: 1 }) : copy ? Buffer.from(raw) : raw, zipped, lines };
  }

  /**
   * One request. It goes through the client's own transport (url, token,
   * timeout, HTTP errors), as its WriteApi sends a batch; its Node transport
   * sends a Buffer body as it is.
   */
  private async post({ bytes: payload, zipped, lines }: Body): Promise<void> {
    if (lines === 0) return;
    const headers: Record<string, string> = { 'content-type': 'text/plain; charset=utf-8' };
    if (zipped) headers['content-encoding'] = 'gzip';
    try {
      await new Promise<void>((resolve, reject) =>
        this.influx.transport.send(this.writePath, payload as unknown as string, { method: 'POST', headers }, { error: reject, complete: () => resolve() }),
      );
    } catch (e) {
      throw new HistoryOutageError(`the history database at ${this.opts.url} did not accept ${lines} samples: ${errorMessage(e)}`);
    }
  }

  /** The tier buckets that are due (tiers.ts), computed by the database and written back; the marks kept in Redis. */
  private async writeTiers(now: number): Promise<void> {
    this.tierCheckedAt = now;
    const backend = this.opts.backend;
    if (!this.marks) {
      const kept = await this.redis.history.tierMarks(backend);
      if (TIERS.every((t) => Number.isFinite(Number(kept[t.name])) && kept[t.name] !== undefined)) {
        this.marks = Object.fromEntries(TIERS.map((t) => [t.name, Number(kept[t.name])])) as TierMarks;
      } else {
        // From the oldest entry still in the outbox (a new backend writes all of it), else from now.
        const oldest = await this.redis.outbox.oldestId(this.stream);
        this.marks = initialMarks(oldest ? Number(oldest.split('-')[0]) : now);
        await this.redis.history.saveTierMarks(backend, this.marks);
      }
    }
    let through = 0;
    while (this.throughLog.length > 0 && this.throughLog[0]!.at <= now - SEARCHABLE_MS) through = this.throughLog.shift()!.through;
    if (through > 0) this.throughLog.unshift({ at: now - SEARCHABLE_MS, through });
    const due = dueBuckets(this.marks, Math.min(through, now) - (this.opts.tierDelayMs ?? TIER_DELAY_MS), this.opts.tierBucketsPerCheck ?? 30);
    try {
      for (const b of due) {
        try {
          await writeTierBucket(this.opts.url, b.tier, b.end, (lines) => this.sendLines(lines), this.opts.timeoutMs ?? 5_000);
        } catch (e) {
          if (e instanceof HistoryOutageError) throw e;
          throw new HistoryOutageError(`the history database at ${this.opts.url} did not answer a tier query: ${errorMessage(e)}`);
        }
        this.marks[b.tier.name] = b.end;
        this.recentTiers.push({ tier: b.tier, end: b.end, at: now });
      }
    } finally {
      // Once a check, not a bucket: the connection is shared with the batches' XREADGROUP BLOCK, which each command would wait behind.
      // A crash before this computes the check's buckets again, which writes the same lines.
      if (due.length > 0) await this.redis.history.saveTierMarks(backend, this.marks);
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

/** A channel entry's fields ({src c, id, ts, p}, ts a positive integer), or undefined for anything else (decodeEntry takes it, and its errors). */
function channelEntry(fields: readonly string[]): { channel: string; ts: number; text: string } | undefined {
  let src: string | undefined;
  let channel: string | undefined;
  let ts = 0;
  let text: string | undefined;
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const k = fields[i];
    if (k === 'src') src = fields[i + 1];
    else if (k === 'id') channel = fields[i + 1];
    else if (k === 'ts') ts = Number(fields[i + 1]);
    else if (k === 'p') text = fields[i + 1];
  }
  if (src !== 'c' || channel === undefined || text === undefined || !Number.isSafeInteger(ts) || ts <= 0) return undefined;
  return { channel, ts, text };
}

/**
 * Whether `now` is the process `before` was: the same start second, and either `before` seen at least 2 s after its start, so
 * that a successor (started after it was seen) cannot have started in the same second, or its /metrics read more times since
 * (a successor started within that second would have been read fewer times: the writer reads it every DB_CHECK_MS).
 */
function sameProcess(before: DatabaseProcess | undefined, now: DatabaseProcess | undefined): boolean {
  return before !== undefined && now !== undefined && before.startS === now.startS && (before.uptimeS >= 2 || now.metricsReads > before.metricsReads);
}

/** An entry's poll time (its `ts` field), 0 when it has none. */
function entryTs(fields: readonly string[] | null | undefined): number {
  if (!fields) return 0;
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === 'ts') return Number(fields[i + 1]) || 0;
  return 0;
}
