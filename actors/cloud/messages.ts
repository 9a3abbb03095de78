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
 * maps them; points that feed no model are not uplinked.
 *
 * An alarm transition (an outbox entry `src a`, as alarm_commit wrote it) is
 * one message of its own, in the same sequence (same seq counter, same order):
 *
 *   {"seq": 42, "ts": 1718000000000, "alarm": "bess1.overtemp", "event": "raise", "from": "normal",
 *    "to": "active", "severity": "major", "active": true, "version": 3, "who": "system", "why": "", …}
 */
import { decodeEntry, type HistorySample } from '../history/outbox.js';
import type { Quality } from '../../runtime/domain/telemetry.js';

export interface ModelValueRef {
  readonly model: string;
  readonly name: string;
}

export interface BuildOptions {
  /** `channel:type:point` → the model value it feeds. */
  readonly mapping: ReadonlyMap<string, ModelValueRef>;
  /** Absent: every model. */
  readonly models?: ReadonlySet<string>;
  readonly quality: boolean;
  readonly timestamps: boolean;
}

/** One message before its seq is known. */
export interface ModelMessage {
  readonly model: string;
  /** The channel of a poll's entry, '' for a calculation's. */
  readonly channel: string;
  readonly ts: number;
  readonly values: Record<string, number>;
  readonly quality: Record<string, Quality> | undefined;
}

/** The messages of one entry's samples, in the order their models first appear. */
export function buildMessages(samples: readonly HistorySample[], opts: BuildOptions): ModelMessage[] {
  const byModel = new Map<
    string,
    { channel: string; ts: number; values: Record<string, number>; quality: Record<string, Quality> | undefined; any: boolean }
  >();
  for (const s of samples) {
    let ref: ModelValueRef | undefined;
    let channel = '';
    // Alarm events are not model values (entryMessages makes them AlarmMessages); command results are events with no cloud topic yet.
    if (s.series.kind === 'alarm' || s.series.kind === 'command') continue;
    if (s.series.kind === 'model') ref = s.series;
    else {
      channel = s.series.channel;
      ref = opts.mapping.get(`${s.series.channel}:${s.series.type}:${s.series.point}`);
    }
    if (!ref || (opts.models && !opts.models.has(ref.model))) continue;
    let m = byModel.get(ref.model);
    if (!m) {
      m = { channel, ts: s.ts, values: {}, quality: undefined, any: false };
      byModel.set(ref.model, m);
    }
    if (s.value !== null) {
      m.values[ref.name] = s.value;
      m.any = true;
    }
    if (opts.quality && s.quality !== 'good') {
      (m.quality ??= {})[ref.name] = s.quality;
      m.any = true;
    }
  }
  const out: ModelMessage[] = [];
  for (const [model, m] of byModel) if (m.any) out.push({ model, channel: m.channel, ts: m.ts, values: m.values, quality: m.quality });
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
export function entryMessages(fields: readonly string[], opts: BuildOptions & { readonly alarms: boolean }): UplinkMessage[] {
  const samples = decodeEntry(fields);
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

/** The JSON a message is published as. */
export function messagePayload(seq: number, m: ModelMessage, timestamps: boolean): string {
  const body: Record<string, unknown> = { seq };
  if (timestamps) body.ts = m.ts;
  body.model = m.model;
  body.values = m.values;
  if (m.quality) body.quality = m.quality;
  return JSON.stringify(body);
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
