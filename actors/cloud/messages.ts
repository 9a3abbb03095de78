/**
 * What a cloud link publishes, built from outbox entries. Pure: no I/O.
 *
 * One message per model per outbox entry (an entry is one poll of a channel,
 * or one calculation of a model), as JSON:
 *
 *   {"seq": 41, "ts": 1718000000000, "model": "pv1", "values": {"P": 12.5}, "quality": {"Q": "comm-failure"}}
 *
 * - `seq` increases by one per message of a link, without gaps, and a message
 *   sent again after a reconnect carries the seq it had the first time: a
 *   consumer drops any seq it has seen and sees every message once, in order.
 * - `ts` is the poll's time (ms; absent with include.timestamps false).
 * - `values` holds the values of the entry for the model; a value whose
 *   device stopped answering has no value, only its quality.
 * - `quality` (absent with include.quality false, or when all are good) names
 *   the values that are not good.
 *
 * Channel points reach a model through mapping:c2m, as the history writer
 * maps them. The raw points of a selected channel (`channels`) are one more
 * message of the entry, after its models': `{"seq", "ts", "channel": "1001",
 * "values": {"m:3": 230.1}, "quality"?}`, each point named `type:id`.
 *
 * on-change with a deadband: a value within its band of the last value the
 * link published for the point is left out (linkState.ts). interval: data
 * entries only feed the latest values; the entry that passes the end of the
 * interval carries its snapshot (intervalMessages).
 *
 * An alarm transition (an outbox entry `src a`, as alarm_commit wrote it) is
 * one message of its own, in the same sequence (same seq counter, same order):
 *
 *   {"seq": 42, "ts": 1718000000000, "alarm": "bess1.overtemp", "event": "raise", "from": "normal",
 *    "to": "active", "severity": "major", "active": true, "version": 3, "who": "system", "why": "", …}
 */
import { decodeEntry, entryHead, scanChannelText, type HistorySample } from '../history/outbox.js';
import type { PointType } from '../../runtime/config/site.js';
import type { Quality } from '../../runtime/domain/telemetry.js';
import { bandOf, passesDeadband, type DeadbandConfig, type LinkState } from './linkState.js';

export interface ModelValueRef {
  readonly model: string;
  readonly name: string;
}

export interface BuildOptions {
  /** `channel:type:point` → the model value it feeds. */
  readonly mapping: ReadonlyMap<string, ModelValueRef>;
  /** Absent: every model. */
  readonly models?: ReadonlySet<string> | undefined;
  /** The channels whose raw points are uplinked too; absent: none. */
  readonly channels?: ReadonlySet<string> | undefined;
  readonly quality: boolean;
  readonly timestamps: boolean;
  /** on-change with a deadband: a value the band holds back is left out; what goes is recorded in the state. */
  readonly deadband?: { readonly state: LinkState; readonly config: DeadbandConfig } | undefined;
}

/** One message before its seq is known: a model's values, or a channel's raw points (`of: 'channel'`, named `type:id`). */
export interface ModelMessage {
  readonly of: 'model' | 'channel';
  /** The model ('' for a channel's message). */
  readonly model: string;
  /** The channel of a poll's entry, '' for a calculation's. */
  readonly channel: string;
  readonly ts: number;
  readonly values: Record<string, number>;
  readonly quality: Record<string, Quality> | undefined;
}

type Building = { channel: string; ts: number; values: Record<string, number>; quality: Record<string, Quality> | undefined; any: boolean };

/** Calls `fn` for each selected place a sample goes: its model value (through mapping:c2m for a channel point) and its raw channel point. */
function eachTarget(s: HistorySample, opts: BuildOptions, fn: (kind: 'm' | 'c', owner: string, name: string, channel: string) => void): void {
  // Alarm events are not model values (entryMessages makes them AlarmMessages); command results are events with no cloud topic yet.
  if (s.series.kind === 'alarm' || s.series.kind === 'command') return;
  if (s.series.kind === 'model') {
    if (!opts.models || opts.models.has(s.series.model)) fn('m', s.series.model, s.series.name, '');
    return;
  }
  const { channel, type, point } = s.series;
  const ref = opts.mapping.get(`${channel}:${type}:${point}`);
  if (ref && (!opts.models || opts.models.has(ref.model))) fn('m', ref.model, ref.name, channel);
  if (opts.channels?.has(channel)) fn('c', channel, `${type}:${point}`, channel);
}

/** A quality mark that is not published (include.quality false) is no message and no reference. */
const skipped = (value: number | null, quality: Quality, opts: BuildOptions) => value === null && !(opts.quality && quality !== 'good');

/** One entry's messages being gathered: its models' (in the order they first appear), then its channel's; the deadband applied. */
class Gathering {
  private readonly byModel = new Map<string, Building>();
  private byChannel: [string, Building] | undefined;

  constructor(private readonly opts: BuildOptions) {}

  add(kind: 'm' | 'c', owner: string, name: string, channel: string, ts: number, value: number | null, quality: Quality): void {
    const db = this.opts.deadband;
    if (db) {
      const band = bandOf(db.config, kind, owner, name);
      if (band !== undefined) {
        const next = { value, quality };
        if (!passesDeadband(db.state.get(kind, owner, name), next, band)) return;
        db.state.set(kind, owner, name, next);
      }
    }
    let m: Building | undefined;
    if (kind === 'c') m = this.byChannel?.[1] ?? (this.byChannel = [owner, { channel, ts, values: {}, quality: undefined, any: false }])[1];
    else {
      m = this.byModel.get(owner);
      if (!m) this.byModel.set(owner, (m = { channel, ts, values: {}, quality: undefined, any: false }));
    }
    addValue(m, name, value, quality, this.opts.quality);
  }

  messages(): ModelMessage[] {
    const out: ModelMessage[] = [];
    for (const [model, m] of this.byModel) if (m.any) out.push({ of: 'model', model, channel: m.channel, ts: m.ts, values: m.values, quality: m.quality });
    if (this.byChannel?.[1].any) {
      const [channel, m] = this.byChannel;
      out.push({ of: 'channel', model: '', channel, ts: m.ts, values: m.values, quality: m.quality });
    }
    return out;
  }
}

/** The messages of one entry's samples: its models' (in the order they first appear), then its channel's. */
export function buildMessages(samples: readonly HistorySample[], opts: BuildOptions): ModelMessage[] {
  const g = new Gathering(opts);
  let s: HistorySample;
  // One function for every sample (not a closure each): where the sample `s` goes.
  const take = (kind: 'm' | 'c', owner: string, name: string, channel: string) => g.add(kind, owner, name, channel, s.ts, s.value, s.quality);
  for (s of samples) if (!skipped(s.value, s.quality, opts)) eachTarget(s, opts, take);
  return g.messages();
}

const TYPE_INDEX: Readonly<Record<PointType, number>> = { m: 0, s: 1, c: 2, a: 3 };
/** mapping:c2m by channel, then by point (id × 4 + type index): made once per mapping, not a key string a point. */
const targetIndexes = new WeakMap<ReadonlyMap<string, ModelValueRef>, Map<string, Map<number, ModelValueRef>>>();

function channelTargets(mapping: ReadonlyMap<string, ModelValueRef>, channel: string): Map<number, ModelValueRef> | undefined {
  let index = targetIndexes.get(mapping);
  if (!index) {
    index = new Map();
    for (const [key, ref] of mapping) {
      const k = /^([\w-]+):([msca]):(\d+)$/.exec(key);
      if (!k) continue;
      let byPoint = index.get(k[1]!);
      if (!byPoint) index.set(k[1]!, (byPoint = new Map()));
      byPoint.set(Number(k[3]) * 4 + TYPE_INDEX[k[2] as PointType], ref);
    }
    targetIndexes.set(mapping, index);
  }
  return index.get(channel);
}

/** A channel entry's point lines, gathered before any is used (a bad line drops the whole entry, deadband references untouched). Reused. */
const rows = { n: 0, type: [] as PointType[], point: [] as number[], value: [] as Array<number | null>, quality: [] as Quality[] };
function gatherRow(type: PointType, point: number, value: number | null, quality: Quality): void {
  const i = rows.n++;
  rows.type[i] = type;
  rows.point[i] = point;
  rows.value[i] = value;
  rows.quality[i] = quality;
}

/**
 * The messages of a channel entry (a poll), read from its points text with
 * no sample object and no mapping key string a point: what buildMessages
 * makes of decodeEntry's samples (a property test holds them equal).
 */
export function channelMessages(channel: string, ts: number, text: string, opts: BuildOptions): ModelMessage[] {
  rows.n = 0;
  scanChannelText(channel, text, gatherRow);
  const targets = channelTargets(opts.mapping, channel);
  const raw = opts.channels?.has(channel) === true;
  const g = new Gathering(opts);
  for (let i = 0; i < rows.n; i++) {
    const type = rows.type[i]!;
    const value = rows.value[i]!;
    const quality = rows.quality[i]!;
    if (skipped(value, quality, opts)) continue;
    const ref = targets?.get(rows.point[i]! * 4 + TYPE_INDEX[type]);
    if (ref && (!opts.models || opts.models.has(ref.model))) g.add('m', ref.model, ref.name, channel, ts, value, quality);
    if (raw) g.add('c', channel, `${type}:${rows.point[i]!}`, channel, ts, value, quality);
  }
  return g.messages();
}

function addValue(
  m: { values: Record<string, number>; quality: Record<string, Quality> | undefined; any: boolean },
  name: string,
  value: number | null,
  q: Quality,
  quality: boolean,
): void {
  if (value !== null) {
    m.values[name] = value;
    m.any = true;
  }
  if (quality && q !== 'good') {
    (m.quality ??= {})[name] = q;
    m.any = true;
  }
}

/**
 * publish: interval: an entry's selected samples become the latest value of their points (no message).
 * A quality mark (no value) keeps the point's last value, as c2m does, and is skipped like in
 * on-change when quality is not published.
 */
export function absorbSamples(samples: readonly HistorySample[], opts: BuildOptions, state: LinkState): void {
  for (const s of samples) {
    if (s.value === null && !(opts.quality && s.quality !== 'good')) continue;
    eachTarget(s, opts, (kind, owner, name) =>
      state.set(kind, owner, name, { value: s.value ?? state.get(kind, owner, name)?.value ?? null, quality: s.quality }),
    );
  }
}

/** publish: interval: one message per model and channel the state holds (its latest values), at `ts`, in target order. */
export function snapshotMessages(state: LinkState, ts: number, quality: boolean): ModelMessage[] {
  const out: ModelMessage[] = [];
  for (const [kind, owner, points] of state.sortedTargets()) {
    const m = { values: {} as Record<string, number>, quality: undefined as Record<string, Quality> | undefined, any: false };
    for (const [name, p] of points) addValue(m, name, p.value, p.quality, quality);
    if (!m.any) continue;
    out.push(
      kind === 'm'
        ? { of: 'model', model: owner, channel: '', ts, values: m.values, quality: m.quality }
        : { of: 'channel', model: '', channel: owner, ts, values: m.values, quality: m.quality },
    );
  }
  return out;
}

/** An alarm transition: the event JSON alarm_commit appended to the outbox. */
export interface AlarmMessage {
  readonly alarm: string;
  readonly ts: number;
  readonly event: Readonly<Record<string, unknown>>;
}

/** A rule's notify event: the JSON rule_notify appended to the outbox. */
export interface NotifyMessage {
  readonly rule: string;
  readonly ts: number;
  readonly event: Readonly<Record<string, unknown>>;
}

/** What one outbox entry becomes: model messages, one alarm message or one notify message. */
export type UplinkMessage =
  | { readonly kind: 'data'; readonly m: ModelMessage }
  | { readonly kind: 'alarm'; readonly a: AlarmMessage }
  | { readonly kind: 'notify'; readonly n: NotifyMessage };

/** The value of a field in an XREADGROUP field/value list. */
function field(fields: readonly string[], name: string): string | undefined {
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
  return undefined;
}

/**
 * The messages of one outbox entry (its field/value list): an alarm entry is
 * one alarm message (none with `alarms` false), any other the model messages
 * of its samples. Throws OutboxFormatError for an entry not in the outbox format.
 */
export function entryMessages(
  fields: readonly string[],
  opts: BuildOptions & { readonly alarms: boolean; readonly interval?: { readonly ms: number; readonly state: LinkState } | undefined },
): UplinkMessage[] {
  if (!opts.interval) {
    const head = entryHead(fields);
    if (head.src === 'c') return channelMessages(head.id, head.ts, head.p, opts).map((m) => ({ kind: 'data', m }));
  }
  const samples = decodeEntry(fields);
  if (opts.interval) return intervalMessages(fields, samples, opts, opts.interval);
  if (field(fields, 'src') === 'r') {
    const event = JSON.parse(field(fields, 'p')!) as Record<string, unknown>;
    return [{ kind: 'notify', n: { rule: field(fields, 'id') ?? '', ts: Number(field(fields, 'ts')), event } }];
  }
  if (field(fields, 'src') === 'a') {
    if (!opts.alarms) return [];
    const s = samples[0]!;
    const event = JSON.parse(field(fields, 'p')!) as Record<string, unknown>;
    return [{ kind: 'alarm', a: { alarm: s.series.kind === 'alarm' ? s.series.alarm : '', ts: s.ts, event } }];
  }
  return buildMessages(samples, opts).map((m) => ({ kind: 'data', m }));
}

/**
 * publish: interval: an entry whose time is past the interval being gathered
 * closes it first (the snapshot of its last values, timed at the interval's
 * end, goes before what the entry itself carries); its samples then join the
 * next interval (the one its time falls in: intervals with no entry at all
 * are skipped while a backlog is replayed). Alarm and notify entries are sent
 * as they come.
 */
function intervalMessages(
  fields: readonly string[],
  samples: readonly HistorySample[],
  opts: BuildOptions & { readonly alarms: boolean },
  iv: { readonly ms: number; readonly state: LinkState },
): UplinkMessage[] {
  const ts = Number(field(fields, 'ts'));
  const out: UplinkMessage[] = [];
  const st = iv.state;
  if (st.bucketEnd > 0 && ts >= st.bucketEnd) for (const m of snapshotMessages(st, st.bucketEnd, opts.quality)) out.push({ kind: 'data', m });
  if (st.bucketEnd === 0 || ts >= st.bucketEnd) st.bucketEnd = (Math.floor(ts / iv.ms) + 1) * iv.ms;
  const src = field(fields, 'src');
  if (src === 'a' || src === 'r') out.push(...entryMessages(fields, { ...opts, interval: undefined }));
  else absorbSamples(samples, opts, st);
  return out;
}

/** The JSON an alarm message is published as: seq, ts, the alarm's id, then the event's fields. */
export function alarmPayload(seq: number, a: AlarmMessage, timestamps: boolean): string {
  const { id: _id, ...event } = a.event;
  return JSON.stringify(timestamps ? { seq, ts: a.ts, alarm: a.alarm, ...event } : { seq, alarm: a.alarm, ...event });
}

/** The JSON a rule's notify event is published as: seq, ts, the rule's id, then the event's fields. */
export function notifyPayload(seq: number, n: NotifyMessage, timestamps: boolean): string {
  const { rule: _rule, ...event } = n.event;
  return JSON.stringify(timestamps ? { seq, ts: n.ts, rule: n.rule, ...event } : { seq, rule: n.rule, ...event });
}

/** Names as JSON strings, kept: the same few hundred names come in every message (bounded, in case they do not). */
const jsonNames = new Map<string, string>();
function jsonName(s: string): string {
  let j = jsonNames.get(s);
  if (j === undefined) {
    j = JSON.stringify(s);
    if (jsonNames.size < 100_000) jsonNames.set(s, j);
  }
  return j;
}

/**
 * The JSON a message is published as, written directly (it is built for
 * every message of the uplink): the same text as JSON.stringify of
 * {seq, ts?, model | channel, values, quality?}. The values are finite (the
 * outbox decode refuses others), so a number's text is its JSON.
 */
export function messagePayload(seq: number, m: ModelMessage, timestamps: boolean): string {
  let out = timestamps ? `{"seq":${seq},"ts":${m.ts},` : `{"seq":${seq},`;
  out += m.of === 'channel' ? `"channel":${jsonName(m.channel)},"values":{` : `"model":${jsonName(m.model)},"values":{`;
  let sep = '';
  for (const name in m.values) {
    out += `${sep}${jsonName(name)}:${m.values[name]}`;
    sep = ',';
  }
  return m.quality ? `${out}},"quality":${JSON.stringify(m.quality)}}` : `${out}}}`;
}

/** Fills a topic template: `{site}`, `{prefix}`, `{model}`, `{channel}`. */
export function fillTopic(template: string, vars: Readonly<Record<string, string>>): string {
  return template.replace(/\{(site|prefix|model|channel)\}/g, (_, k: string) => vars[k] ?? '');
}

/** The topics of a link under its prefix. */
export function linkTopics(prefixTemplate: string, site: string) {
  const prefix = fillTopic(prefixTemplate, { site });
  return {
    prefix,
    status: `${prefix}/status`,
    cmd: `${prefix}/cmd`,
    cmdResult: (id: string) => `${prefix}/cmd/${id}/result`,
    read: `${prefix}/read`,
    alarm: `${prefix}/alarm`,
    notify: `${prefix}/notify`,
    readResult: `${prefix}/read/result`,
  } as const;
}

/** The seqs of one entry's messages: `first`, `first + 1`, … `first + count - 1`. */
export interface EntrySeqs {
  readonly first: number;
  readonly count: number;
  readonly again: boolean;
}

/**
 * Seqs for a batch of entries: an entry that was given seqs before (`known`,
 * "first count" as kept in `cloud:{link}:inflight`) keeps them; the others
 * get the next ones after `lastSeq`, in entry order. Returns what to record
 * (entry index → "first count") and the new last seq. The law (checked with
 * fast-check): whatever the losses, a consumer that drops seen seqs gets
 * 1, 2, 3, … without a gap.
 */
export function planSeqs(
  counts: readonly number[],
  known: ReadonlyArray<string | null | undefined>,
  lastSeq: number,
): { seqs: EntrySeqs[]; record: Array<[number, string]>; lastSeq: number } {
  const seqs: EntrySeqs[] = [];
  const record: Array<[number, string]> = [];
  let seq = lastSeq;
  counts.forEach((count, i) => {
    const k = known[i];
    if (k) {
      const [first, had] = k.split(' ').map(Number) as [number, number];
      seqs.push({ first, count: had, again: true });
      return;
    }
    seqs.push({ first: seq + 1, count, again: false });
    record.push([i, `${seq + 1} ${count}`]);
    seq += count;
  });
  return { seqs, record, lastSeq: seq };
}
