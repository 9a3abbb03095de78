/**
 * Line protocol straight from a channel entry's points text (c2m's
 * "type id value quality\n" a point) into the bytes of a request, without a
 * string or an object a point: at 100k points/s, each also written as its
 * model value, the writer makes 200k lines a second. Decoding into objects,
 * looking the mapping up by a string made a sample, escaping tags, formatting
 * numbers again, then joining and encoding the strings cost ~5 µs a line (most
 * of a core) and megabytes of garbage a batch, which the runtime's capped
 * heap did not hold at that rate.
 *
 * Here the measurement and tags of a channel's points are made once per
 * channel and point type; those of the model values a point feeds once per
 * mapping, packed in one buffer per channel (what the c2m mapping costs in
 * memory already, not an object a series); the id and a value that is a plain
 * decimal (what formatValue writes) are copied as they are.
 *
 * The lines are the same samples decodeEntry + toLine make (a property test
 * in test/unit/history-lines.test.ts): the same values and qualities, the
 * same errors for a line that is not in the outbox format. A line that is not
 * plain (leading zeros, an exponent, anything odd) goes through decodeEntry's
 * checks and toLine. Series with a keep policy other than plain on-change
 * come back as samples, for the KeepFilter.
 *
 * The quality field beside a value is written only when the series needs it
 * (`qualityEveryMs` > 0): when it differs from the last one written, on the
 * series' first value since the encoder's state was reset (a new writer, a
 * failure, a database restart, the window written again: resetQuality), and
 * when the last one written is `qualityEveryMs` or more older (poll time) or
 * newer (a repeat) than the value. A quality mark (no value) always has it.
 * VictoriaMetrics stores `value=…,quality=0i` as two rows; written on every
 * line, the quality row cost it 20–30 % of its time a line (round 16), for a
 * field that is `good` beside every value a channel sends. A value's quality
 * is the newest quality sample at or before it within `qualityEveryMs`
 * (last_over_time; the README's series naming).
 */
import type { PointType } from '../../runtime/config/site.js';
import type { ModelValueTarget } from '../outbox/consumer.js';
import {
  decodeEntry,
  type HistorySample,
  lineHead,
  OutboxFormatError,
  parseSeriesId,
  POINT_TYPE_INDEX,
  POINT_TYPES,
  PointLineReader,
  QUALITY_OF,
  seriesId,
  toLine,
} from './outbox.js';

/** A request body being built: lines of line protocol, each ending in '\n', in a buffer that grows. */
export class LineBuffer {
  private buf: Buffer;
  length = 0;
  /** Lines so far. */
  lines = 0;

  /** `spare`: a buffer of an earlier body, no longer read by anyone, used again when it is big enough (no allocation a batch). */
  constructor(capacity = 1 << 16, spare?: Buffer) {
    const size = Math.max(1024, capacity);
    this.buf = spare !== undefined && spare.length >= size ? spare : Buffer.allocUnsafe(size);
  }

  /** The whole buffer the body is built in (to hand back as a spare once the body has been sent). */
  get backing(): Buffer {
    return this.buf;
  }

  /** Room for `n` more bytes. */
  reserve(n: number): void {
    if (this.length + n <= this.buf.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.length + n, this.buf.length * 2));
    this.buf.copy(grown, 0, 0, this.length);
    this.buf = grown;
  }

  /** Bytes (after reserve). */
  put(b: Uint8Array): void {
    this.copy(b, 0, b.length);
  }

  /**
   * Bytes [from, to) of `b` (after reserve): a loop for the few bytes of a line's part, TypedArray.set from 24 bytes
   * (a model value's prefix): in round 19's measure of the encoder alone (KeyTable lookups), ~290 against ~350 ns a line.
   */
  copy(b: Uint8Array, from: number, to: number): void {
    const buf = this.buf;
    let o = this.length;
    if (to - from >= 24) {
      buf.set(b.subarray(from, to), o);
      this.length = o + to - from;
      return;
    }
    for (let i = from; i < to; i++) buf[o++] = b[i]!;
    this.length = o;
  }

  /** Characters of `s` in [from, to) that are ASCII (checked by the caller), after reserve. */
  ascii(s: string, from: number, to: number): void {
    const buf = this.buf;
    let o = this.length;
    for (let i = from; i < to; i++) buf[o++] = s.charCodeAt(i);
    this.length = o;
  }

  /** A whole line (without its '\n'), any text. */
  line(s: string): void {
    this.reserve(s.length * 3 + 1);
    this.length += this.buf.write(s, this.length, 'utf8');
    this.buf[this.length++] = 0x0a;
    this.lines += 1;
  }

  /** Drops what came after `length`/`lines` (an entry that turned out bad). */
  rewind(length: number, lines: number): void {
    this.length = length;
    this.lines = lines;
  }

  /** The body (a view of the buffer: build nothing more into it). */
  bytes(): Buffer {
    return this.buf.subarray(0, this.length);
  }
}

const CHANNEL_ID = /^[\w-]+$/;
const SP_VALUE = Buffer.from(' value=');
const VALUE = Buffer.from('value=');
/** Room for a line beside its prefix, id and value: the tail is under 40 bytes. */
const TAIL_ROOM = 48;

/** Point keys below this are kept in an array (KeyTable); a channel's larger ones in a Map. */
const DENSE_KEYS = 1 << 16;

/**
 * Positive numbers by point key (id × 4 + type), 0 for none: an array that grows to the largest key seen while the keys
 * are small (point ids under 16,384), a Map beyond. Looked up twice a line (a model value's prefix, its quality written),
 * a Map's get was ~23 % of the encoder's own time in a drain's profile (round 19).
 */
export class KeyTable {
  private dense = new Float64Array(16);
  private sparse: Map<number, number> | undefined;

  get(key: number): number {
    return key < this.dense.length ? this.dense[key]! : (this.sparse?.get(key) ?? 0);
  }

  set(key: number, value: number): void {
    if (key >= this.dense.length) {
      if (value === 0) {
        this.sparse?.delete(key);
        return;
      }
      if (key < DENSE_KEYS) {
        let size = this.dense.length;
        while (size <= key) size *= 2;
        const grown = new Float64Array(size);
        grown.set(this.dense);
        this.dense = grown;
      }
    }
    if (key < this.dense.length) this.dense[key] = value;
    else (this.sparse ??= new Map()).set(key, value);
  }

  clear(): void {
    this.dense.fill(0);
    this.sparse?.clear();
  }
}

/** What a channel's points need, made once per channel (and per mapping, for the model values). */
interface ChannelHeads {
  /** "voltage_point,channel=X,type=T,point=" per point type. */
  readonly point: readonly Buffer[];
  /** Point keys (id × 4 + type) whose channel series has a keep policy. */
  readonly pointPolicy: ReadonlySet<number> | undefined;
  /** The model value prefixes ("voltage_model,model=M,name=N "), packed: key → offset × 1024 + length (0: none). */
  readonly model: KeyTable;
  readonly modelBytes: Buffer;
  /** Point keys whose model value has a keep policy, or a prefix too long to pack: the sample way. */
  readonly modelSlow: ReadonlyMap<number, ModelValueTarget>;
  /** The quality last written of each point's channel series and model value, by point key: its poll time × 4 + its code (0: none). */
  readonly pointQuality: KeyTable;
  readonly modelQuality: KeyTable;
}

/**
 * Whether text[from, to) is a value text that line protocol takes as it is: -?digits[.digits], as
 * formatValue writes it, not -0, and finite (only hundreds of digits make Infinity; those are read
 * to tell). Read in place: no substring a point.
 */
function plainDecimal(text: string, from: number, to: number): boolean {
  let i = text.charCodeAt(from) === 45 ? from + 1 : from; // '-'
  const start = i;
  let dot = -1;
  let nonZero = false;
  for (; i < to; i++) {
    const c = text.charCodeAt(i);
    if (c === 46 && dot < 0) dot = i;
    else if (c < 48 || c > 57) return false;
    else if (c !== 48) nonZero = true;
  }
  // A digit before and after the dot (Number('1.') and Number('.5') parse; they take the slow way), and no -0 (toLine writes 0).
  const plain = to > start && dot !== start && dot !== to - 1 && (start === from || nonZero);
  return plain && (to - from < 300 || Number.isFinite(Number(text.slice(from, to))));
}

export class LineEncoder {
  private channels = new Map<string, ChannelHeads>();
  private mapping: ReadonlyMap<string, ModelValueTarget> = new Map();
  /** Series ids with a keep policy: channel points by channel and key, model values by id. */
  private readonly pointPolicies = new Map<string, Set<number>>();
  private readonly modelPolicies = new Set<string>();
  private readonly qualityEveryMs: number;

  constructor(
    private readonly opts: {
      readonly channels: boolean;
      readonly models: boolean;
      /** Series ids with a keep policy other than plain on-change (the KeepFilter's); their samples come back as objects. */
      readonly policies?: Iterable<string>;
      /** The quality beside a value at least this often a series (poll time), else only where it changed (0: on every line). */
      readonly qualityEveryMs?: number;
    },
  ) {
    this.qualityEveryMs = opts.qualityEveryMs ?? 0;
    for (const id of opts.policies ?? []) {
      const r = parseSeriesId(id);
      if (r.kind === 'point') {
        let s = this.pointPolicies.get(r.channel);
        if (!s) this.pointPolicies.set(r.channel, (s = new Set()));
        s.add(r.point * 4 + POINT_TYPE_INDEX[r.type]);
      } else if (r.kind === 'model') this.modelPolicies.add(id);
    }
  }

  /** A new c2m mapping (a site reload changes it): every channel's heads are made again, from one pass over it. */
  setMapping(mapping: ReadonlyMap<string, ModelValueTarget>): void {
    this.mapping = mapping;
    this.channels.clear();
    const byChannel = new Map<string, Array<readonly [number, ModelValueTarget]>>();
    if (this.opts.models)
      for (const [key, target] of mapping) {
        const m = /^([\w-]+):([msca]):(\d+)$/.exec(key);
        if (!m) continue;
        let list = byChannel.get(m[1]!);
        if (!list) byChannel.set(m[1]!, (list = []));
        list.push([Number(m[3]) * 4 + POINT_TYPE_INDEX[m[2] as PointType], target]);
      }
    for (const [channel, list] of byChannel) this.channels.set(channel, this.makeHeads(channel, list));
  }

  /**
   * Forgets the quality written of every series: the next value of each carries it. After lines that may not have been
   * stored (a failed batch, a database restart) and around the window written again, whose lines carry every change again.
   */
  resetQuality(): void {
    for (const h of this.channels.values()) {
      h.pointQuality.clear();
      h.modelQuality.clear();
    }
  }

  /** Whether a value of the series (`written`, by point key) at `ts` with quality code `q` carries the quality; if so, it is noted. */
  private withQuality(written: KeyTable, key: number, ts: number, q: number): boolean {
    const every = this.qualityEveryMs;
    if (every <= 0) return true;
    const last = written.get(key);
    if (last !== 0 && last % 4 === q) {
      const age = ts - (last - q) / 4;
      if (age >= 0 && age < every) return false;
    }
    written.set(key, ts * 4 + q);
    return true;
  }

  private headsOf(channel: string): ChannelHeads {
    let h = this.channels.get(channel);
    if (!h) this.channels.set(channel, (h = this.makeHeads(channel, [])));
    return h;
  }

  private makeHeads(channel: string, targets: ReadonlyArray<readonly [number, ModelValueTarget]>): ChannelHeads {
    const point = POINT_TYPES.map((type) => Buffer.from(lineHead({ kind: 'point', channel, type, point: 0 }).slice(0, -1)));
    const model = new KeyTable();
    const modelSlow = new Map<number, ModelValueTarget>();
    const prefixes: Buffer[] = [];
    let size = 0;
    for (const [k, target] of targets) {
      const ref = { kind: 'model', model: target.model, name: target.name } as const;
      let prefix: Buffer | undefined;
      try {
        prefix = Buffer.from(`${lineHead(ref)} `);
      } catch {
        // A name line protocol cannot carry: toLine refuses it on the sample way, and the entry is skipped as before.
      }
      if (!prefix || prefix.length >= 1024 || this.modelPolicies.has(seriesId(ref))) modelSlow.set(k, target);
      else {
        model.set(k, size * 1024 + prefix.length);
        prefixes.push(prefix);
        size += prefix.length;
      }
    }
    return {
      point,
      pointPolicy: this.pointPolicies.get(channel),
      model,
      modelBytes: Buffer.concat(prefixes, size),
      modelSlow,
      pointQuality: new KeyTable(),
      modelQuality: new KeyTable(),
    };
  }

  /**
   * Appends the lines of one channel entry (poll time `ts`, its points text)
   * to `out`, and returns the samples of series with a keep policy. Throws
   * OutboxFormatError, having appended nothing, when any point line is not in
   * the outbox format (the writer skips and counts the entry).
   */
  channelEntry(channel: string, ts: number, text: string, out: LineBuffer): HistorySample[] {
    if (!CHANNEL_ID.test(channel)) throw new OutboxFormatError(`outbox entry: bad channel id '${channel}'`);
    const h = this.headsOf(channel);
    const startLength = out.length;
    const startLines = out.lines;
    // The end of a line, per quality code: after a value, and alone (a quality mark).
    const afterValue = [0, 1, 2, 3].map((q) => Buffer.from(`,quality=${q}i ${ts}\n`));
    const alone = [0, 1, 2, 3].map((q) => Buffer.from(`quality=${q}i ${ts}\n`));
    const bare = Buffer.from(` ${ts}\n`);
    const samples: HistorySample[] = [];
    const channels = this.opts.channels;
    try {
      const r = new PointLineReader(text);
      while (r.next()) {
        const b = r.valueFrom - 1;
        const c = r.valueTo;
        // The value is copied as it is: only a plain decimal (formatValue's text) is.
        const noValue = b + 1 === c;
        if (!r.plain || (!noValue && !plainDecimal(text, b + 1, c))) {
          this.slowLine(channel, ts, text.slice(r.from, r.to), h, out, samples);
          continue;
        }
        const t = r.type;
        const id = r.id;
        const q = r.quality;
        const a = r.from + 1;
        const key = id * 4 + t;
        if (channels) {
          if (h.pointPolicy?.has(key))
            samples.push({
              series: { kind: 'point', channel, type: POINT_TYPES[t]!, point: id },
              ts,
              value: noValue ? null : Number(text.slice(b + 1, c)),
              quality: QUALITY_OF[q]!,
            });
          else {
            const base = h.point[t]!;
            out.reserve(base.length + (c - a) + TAIL_ROOM);
            out.put(base);
            out.ascii(text, a + 1, b);
            if (noValue) {
              out.ascii(' ', 0, 1);
              out.put(alone[q]!);
              h.pointQuality.set(key, ts * 4 + q);
            } else {
              out.put(SP_VALUE);
              out.ascii(text, b + 1, c);
              out.put(this.withQuality(h.pointQuality, key, ts, q) ? afterValue[q]! : bare);
            }
            out.lines += 1;
          }
        }
        const packed = h.model.get(key);
        if (packed !== 0) {
          const off = Math.floor(packed / 1024);
          const len = packed % 1024;
          out.reserve(len + (c - b) + TAIL_ROOM);
          out.copy(h.modelBytes, off, off + len);
          if (noValue) {
            out.put(alone[q]!);
            h.modelQuality.set(key, ts * 4 + q);
          } else {
            out.put(VALUE);
            out.ascii(text, b + 1, c);
            out.put(this.withQuality(h.modelQuality, key, ts, q) ? afterValue[q]! : bare);
          }
          out.lines += 1;
        } else {
          const target = h.modelSlow.get(key);
          if (target)
            this.slowSample(
              {
                series: { kind: 'model', model: target.model, name: target.name },
                ts,
                value: noValue ? null : Number(text.slice(b + 1, c)),
                quality: QUALITY_OF[q]!,
              },
              out,
              samples,
            );
        }
      }
    } catch (e) {
      out.rewind(startLength, startLines);
      throw e;
    }
    return samples;
  }

  /** A line that is not plain: decodeEntry's checks (and errors), then the sample way for the point and the value it feeds. */
  private slowLine(channel: string, ts: number, line: string, h: ChannelHeads, out: LineBuffer, samples: HistorySample[]): void {
    const [s] = decodeEntry(['src', 'c', 'id', channel, 'ts', String(ts), 'p', line]) as [HistorySample];
    if (s.series.kind !== 'point') return;
    const key = s.series.point * 4 + POINT_TYPE_INDEX[s.series.type];
    // Written with its quality (toLine), which the fast way's note would not know of: the next value there carries it again.
    h.pointQuality.set(key, 0);
    h.modelQuality.set(key, 0);
    if (this.opts.channels) this.slowSample(s, out, samples, h.pointPolicy?.has(key) === true);
    const target = this.opts.models ? this.mapping.get(`${channel}:${s.series.type}:${s.series.point}`) : undefined;
    if (target) this.slowSample({ ...s, series: { kind: 'model', model: target.model, name: target.name } }, out, samples);
  }

  private slowSample(
    s: HistorySample,
    out: LineBuffer,
    samples: HistorySample[],
    policy = s.series.kind === 'model' && this.modelPolicies.has(seriesId(s.series)),
  ): void {
    if (policy) samples.push(s);
    else out.line(toLine(s));
  }
}
