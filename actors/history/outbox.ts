/**
 * The history outbox format, both ways: stream entries as c2m and model_set
 * write them (lua/telemetry.lua) → samples → InfluxDB line protocol, and the
 * series naming that the query side (query.ts) reads back. Pure: no I/O.
 *
 * Series naming (stable; the README documents it):
 *
 * | what            | series id           | line protocol                                    | Prometheus metrics (VictoriaMetrics)                      |
 * |-----------------|---------------------|--------------------------------------------------|-----------------------------------------------------------|
 * | a channel point | `channel/1001/m/3`  | `voltage_point,channel=1001,type=m,point=3 value=…,quality=0i <ms>` | `voltage_point_value{channel="1001",type="m",point="3"}`, `voltage_point_quality{…}` |
 * | a model value   | `model/pv1/P`       | `voltage_model,model=pv1,name=P value=…,quality=0i <ms>`            | `voltage_model_value{model="pv1",name="P"}`, `voltage_model_quality{…}`              |
 *
 * A model value is either calculated (model_set's entries) or a measurement: the
 * channel point mapped onto it (mapping:c2m), which the writer keeps under both
 * names, since the outbox carries channel points only.
 *
 * Quality is a field (an integer code, QUALITY_CODE), not a tag: as a tag, a
 * change of quality would split one signal into several series and break a
 * chart; as a field it is a parallel series with the same labels, which a run
 * of `good` costs next to nothing. Every sample toLine makes carries it; the
 * writer's fast way (lines.ts) leaves it off a channel point's or mapped model
 * value's value where it did not change (qualityEveryMs). A quality mark
 * without a value (a device that stopped answering) is a line with the quality
 * field only. Timestamps are the poll's, in milliseconds.
 *
 * Decoding rules follow c2m's comment: an empty value is a quality mark only;
 * an empty quality beside a value means good (a channel sends a value only
 * with quality good, and a quality whenever it changes).
 */
import type { PointType } from '../../runtime/config/site.js';
import { VoltageError } from '../../runtime/errors.js';
import type { Quality } from '../../runtime/domain/telemetry.js';

export type SeriesRef =
  | { readonly kind: 'point'; readonly channel: string; readonly type: PointType; readonly point: number }
  | { readonly kind: 'model'; readonly model: string; readonly name: string }
  /** An alarm's transitions (outbox entries `src a` from alarm_commit): 1 while it is active, 0 when not. */
  | { readonly kind: 'alarm'; readonly alarm: string }
  /** The results of a model control's commands (outbox entries `src k` from cmd_result): the commanded value, with its status. */
  | { readonly kind: 'command'; readonly model: string; readonly name: string };

export interface HistorySample {
  readonly series: SeriesRef;
  readonly ts: number;
  /** null: a quality mark only. */
  readonly value: number | null;
  readonly quality: Quality;
  /** Fields beside value and quality (a command result's status and read-back), written as floats. */
  readonly fields?: Readonly<Record<string, number>>;
}

export const QUALITY_CODE: Readonly<Record<Quality, number>> = { good: 0, stale: 1, bad: 2, 'comm-failure': 3 };
/** The quality of each code (QUALITY_CODE backwards). */
export const QUALITY_OF: readonly Quality[] = ['good', 'stale', 'bad', 'comm-failure'];
const QUALITY_INDEX: ReadonlyMap<string, number> = new Map(QUALITY_OF.map((q) => [q, QUALITY_CODE[q]]));
/** The point types by index (PointLineReader's `type`). */
export const POINT_TYPES: readonly PointType[] = ['m', 's', 'c', 'a'];
export const POINT_TYPE_INDEX: Readonly<Record<PointType, number>> = { m: 0, s: 1, c: 2, a: 3 };

export const MEASUREMENT = { point: 'voltage_point', model: 'voltage_model', alarm: 'voltage_alarm', command: 'voltage_command' } as const;
/** A command result's status as a number (the `status` field of voltage_command). */
export const COMMAND_STATUS_CODE: Readonly<Record<string, number>> = { confirmed: 0, failed: 1, timeout: 2 };
/** VictoriaMetrics names a line-protocol field `<measurement>_<field>`. */
export const METRIC = {
  pointValue: 'voltage_point_value',
  pointQuality: 'voltage_point_quality',
  modelValue: 'voltage_model_value',
  modelQuality: 'voltage_model_quality',
  alarmValue: 'voltage_alarm_value',
  alarmQuality: 'voltage_alarm_quality',
  commandValue: 'voltage_command_value',
  commandStatus: 'voltage_command_status',
} as const;

/** An outbox entry (or a series id, or a line) that does not have the documented shape. */
export class OutboxFormatError extends VoltageError {
  constructor(message: string, context: Readonly<Record<string, string>> = {}) {
    super('runtime', 'HISTORY_FORMAT', message, context);
    this.name = 'OutboxFormatError';
  }
}

const CHANNEL_ID = /^[\w-]+$/;
const POINT_LINE = /^([msca]) (\d+) (\S*) (\S*)$/;

function qualityOf(text: string, where: string): Quality {
  if (!Object.hasOwn(QUALITY_CODE, text)) throw new OutboxFormatError(`${where}: unknown quality '${text}'`);
  return text as Quality;
}

function numberOf(text: string, where: string): number {
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n)) throw new OutboxFormatError(`${where}: value '${text}' is not a finite number`);
  return n;
}

/**
 * The samples of one outbox entry, given its field/value list as XREADGROUP
 * returns it ({src, id, ts, p}). Throws OutboxFormatError for anything else:
 * the writer counts and acknowledges such an entry rather than blocking on it.
 */
export function decodeEntry(fields: readonly string[]): HistorySample[] {
  const { src, id, ts, p } = entryHead(fields);
  if (src === 'c') return decodeChannelText(id, ts, p);
  if (src === 'm') return decodeModelJson(id, ts, p);
  if (src === 'a') return [decodeAlarmEvent(id, ts, p)];
  if (src === 'k') return [decodeCommandResult(id, ts, p)];
  // A rule's notify event (rule_notify): for the cloud links, not a sample of any series.
  if (src === 'r') return [];
  throw new OutboxFormatError(`outbox entry of ${id}: unknown src '${String(src)}'`);
}

/** An outbox entry's fields ({src, id, ts, p}; the last of a repeated name), or OutboxFormatError when id, ts or p is missing or ts is not a positive integer. */
export function entryHead(fields: readonly string[]): { readonly src: string | undefined; readonly id: string; readonly ts: number; readonly p: string } {
  let src: string | undefined;
  let id: string | undefined;
  let tsText: string | undefined;
  let p: string | undefined;
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const k = fields[i];
    if (k === 'src') src = fields[i + 1];
    else if (k === 'id') id = fields[i + 1];
    else if (k === 'ts') tsText = fields[i + 1];
    else if (k === 'p') p = fields[i + 1];
  }
  if (id === undefined || tsText === undefined || p === undefined) throw new OutboxFormatError('outbox entry lacks id, ts or p');
  const ts = Number(tsText);
  if (!Number.isSafeInteger(ts) || ts <= 0) throw new OutboxFormatError(`outbox entry of ${id}: ts '${tsText}' is not a positive integer`);
  return { src, id, ts, p };
}

/** An alarm transition as alarm_commit wrote it: JSON {id, event, from, to, severity, active, …}; kept as 1 while active, 0 when not. */
function decodeAlarmEvent(id: string, ts: number, text: string): HistorySample {
  let e: { active?: unknown };
  try {
    e = JSON.parse(text) as { active?: unknown };
  } catch {
    throw new OutboxFormatError(`alarm ${id}: the event is not JSON`);
  }
  if (typeof e.active !== 'boolean') throw new OutboxFormatError(`alarm ${id}: the event has no 'active'`);
  return { series: { kind: 'alarm', alarm: id }, ts, value: e.active ? 1 : 0, quality: 'good' };
}

/** A command's end as cmd_result wrote it: JSON {model, name, value, status, readback, source, message}. */
function decodeCommandResult(id: string, ts: number, text: string): HistorySample {
  let e: Record<string, unknown>;
  try {
    e = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new OutboxFormatError(`command ${id}: the result is not JSON`);
  }
  const { model, name, value, status, readback } = e;
  if (typeof model !== 'string' || model === '' || typeof name !== 'string' || name === '')
    throw new OutboxFormatError(`command ${id}: the result names no model and control`);
  if (typeof status !== 'string' || !(status in COMMAND_STATUS_CODE)) throw new OutboxFormatError(`command ${id}: unknown status '${String(status)}'`);
  const where = `command ${id}`;
  const fields: Record<string, number> = { status: COMMAND_STATUS_CODE[status]! };
  if (typeof readback === 'string' && readback !== '') fields.readback = numberOf(readback, where);
  return { series: { kind: 'command', model, name }, ts, value: numberOf(String(value), where), quality: 'good', fields };
}

function decodeChannelText(channel: string, ts: number, text: string): HistorySample[] {
  const out: HistorySample[] = [];
  scanChannelText(channel, text, (type, point, value, quality) => {
    out.push({ series: { kind: 'point', channel, type, point }, ts, value, quality });
  });
  return out;
}

/** A channel entry's point line, as scanChannelText reports it (value null: a quality mark only). */
export type PointVisitor = (type: PointType, point: number, value: number | null, quality: Quality) => void;

/** The index in POINT_TYPES of a type's character code ('m', 's', 'c', 'a'), -1 for any other. */
function typeIndex(code: number): number {
  return code === 109 ? 0 : code === 115 ? 1 : code === 99 ? 2 : code === 97 ? 3 : -1;
}

/**
 * A channel entry's point lines ("type id value quality", one a line: c2m's
 * text), read one after another in place, without a substring or an object a
 * line: the one reader of that text for every outbox consumer (the samples of
 * scanChannelText, the history writer's line protocol in lines.ts). A line of
 * the common shape is `plain`: a type, an id of 1–15 digits without a leading
 * zero, a value (maybe empty; whether its text is a number is the caller's to
 * check), a known quality or none, not both empty. Any other line is the
 * caller's to read by the pattern, with the format's errors.
 */
export class PointLineReader {
  private pos = 0;
  /** The line is text[from, to). */
  from = 0;
  to = 0;
  plain = false;
  /** Of a plain line: the type (an index in POINT_TYPES), the id, the value's text [valueFrom, valueTo), the quality code. */
  type = 0;
  id = 0;
  valueFrom = 0;
  valueTo = 0;
  quality = 0;

  constructor(private readonly text: string) {}

  /** Moves to the next line that is not empty; false when there is none. */
  next(): boolean {
    const text = this.text;
    let pos = this.pos;
    while (pos < text.length && text.charCodeAt(pos) === 10) pos += 1;
    if (pos >= text.length) {
      this.pos = pos;
      return false;
    }
    let end = text.indexOf('\n', pos);
    if (end < 0) end = text.length;
    this.from = pos;
    this.to = end;
    this.pos = end + 1;
    this.read(pos, end);
    return true;
  }

  /** The line text[pos, end): plain or not, and a plain line's parts. */
  private read(pos: number, end: number): void {
    const text = this.text;
    const t = typeIndex(text.charCodeAt(pos));
    // The spaces after the id and after the value.
    const b = text.indexOf(' ', pos + 2);
    const c = b < 0 || b >= end ? -1 : text.indexOf(' ', b + 1);
    let plain =
      t >= 0 && text.charCodeAt(pos + 1) === 32 && b > pos + 2 && b - pos - 2 <= 15 && c > b && c < end && (b === pos + 3 || text.charCodeAt(pos + 2) !== 48);
    let id = 0;
    for (let i = pos + 2; plain && i < b; i++) {
      const d = text.charCodeAt(i) - 48;
      if (d < 0 || d > 9) plain = false;
      else id = id * 10 + d;
    }
    let q: number | undefined = 0;
    // An empty quality beside a value is good; a line with neither is not plain.
    if (plain && c + 1 < end) q = QUALITY_INDEX.get(text.slice(c + 1, end));
    else if (plain && b + 1 === c) plain = false;
    this.plain = plain && q !== undefined;
    this.type = t;
    this.id = id;
    this.valueFrom = b + 1;
    this.valueTo = c;
    this.quality = q ?? 0;
  }
}

/** A character the plain way takes in a value: digits, '.', '-', '+', 'e', 'E' (Number's decimal and exponent text, no space). */
function plainValueChar(c: number): boolean {
  return (c >= 48 && c <= 57) || c === 46 || c === 45 || c === 43 || c === 101 || c === 69;
}

/**
 * The point lines of a channel entry's text, in order, each given to `visit`
 * without an object or a match a line (the decode of every entry of every
 * outbox consumer). A plain line (PointLineReader) whose value is of number
 * characters is read in place; any other goes through the pattern, with its
 * errors. Throws OutboxFormatError at the first line not in the format, after
 * visiting the lines before it: a caller that must not act on half an entry
 * gathers first.
 */
export function scanChannelText(channel: string, text: string, visit: PointVisitor): void {
  if (!CHANNEL_ID.test(channel)) throw new OutboxFormatError(`outbox entry: bad channel id '${channel}'`);
  const r = new PointLineReader(text);
  while (r.next()) {
    const from = r.valueFrom;
    const to = r.valueTo;
    let plain = r.plain;
    for (let i = from; plain && i < to; i++) plain = plainValueChar(text.charCodeAt(i));
    let value: number | null = null;
    if (plain && from < to) {
      value = decimalValue(text, from, to);
      if (Number.isNaN(value)) value = Number(text.slice(from, to));
    }
    if (!plain || (value !== null && !Number.isFinite(value))) visitLine(channel, text.slice(r.from, r.to), visit);
    else visit(POINT_TYPES[r.type]!, r.id, value, QUALITY_OF[r.quality]!);
  }
}

const POW10 = Array.from({ length: 16 }, (_, k) => 10 ** k);

/**
 * The value of text[from, to) when it is a decimal `-?digits[.digits]` of at
 * most 15 digits (formatValue's text), NaN otherwise (Number() reads it).
 * Exactly Number()'s value: the digits are an exact integer and the power of
 * ten an exact double, so the one division rounds the decimal correctly, as
 * Number() does; it only spares the substring and the runtime's parse.
 */
function decimalValue(text: string, from: number, to: number): number {
  let i = from;
  const negative = text.charCodeAt(i) === 45;
  if (negative) i += 1;
  let digits = 0;
  let fraction = -1;
  let m = 0;
  for (; i < to; i++) {
    const c = text.charCodeAt(i);
    if (c === 46 && fraction < 0 && digits > 0) fraction = 0;
    else if (c >= 48 && c <= 57) {
      m = m * 10 + (c - 48);
      digits += 1;
      if (fraction >= 0) fraction += 1;
    } else return Number.NaN;
  }
  if (digits === 0 || digits > 15 || fraction === 0) return Number.NaN;
  const v = fraction > 0 ? m / POW10[fraction]! : m;
  return negative ? -v : v;
}

/** One point line by the pattern: anything the plain way does not take, with the format's errors. */
function visitLine(channel: string, line: string, visit: PointVisitor): void {
  const m = POINT_LINE.exec(line);
  if (!m) throw new OutboxFormatError(`channel ${channel}: point line '${line.slice(0, 60)}' is not "type id value quality"`);
  const [, type, point, v, q] = m as unknown as [string, PointType, string, string, string];
  const where = `channel ${channel} ${type}:${point}`;
  if (v === '' && q === '') throw new OutboxFormatError(`${where}: neither a value nor a quality`);
  visit(type, Number(point), v === '' ? null : numberOf(v, where), q === '' ? 'good' : qualityOf(q, where));
}

function decodeModelJson(model: string, ts: number, json: string): HistorySample[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    throw new OutboxFormatError(`model ${model}: p is not JSON`);
  }
  // cjson encodes an empty table as {}; model_set never sends none, but accept it.
  if (!Array.isArray(parsed)) {
    if (typeof parsed === 'object' && parsed !== null && Object.keys(parsed).length === 0) return [];
    throw new OutboxFormatError(`model ${model}: p is not a list of [name, value, quality]`);
  }
  return parsed.map((item: unknown) => {
    if (!Array.isArray(item) || item.length !== 3 || !item.every((x) => typeof x === 'string') || item[0] === '') {
      throw new OutboxFormatError(`model ${model}: ${JSON.stringify(item)?.slice(0, 60)} is not [name, value, quality]`);
    }
    const [name, v, q] = item as [string, string, string];
    const where = `model ${model} ${name}`;
    return { series: { kind: 'model', model, name }, ts, value: v === '' ? null : numberOf(v, where), quality: qualityOf(q, where) } satisfies HistorySample;
  });
}

// ---- line protocol ----

/** Tag values and keys: backslash, comma, equals sign and space are escaped; a line break cannot be written. */
function escapeTag(s: string): string {
  if (/[\r\n]/.test(s)) throw new OutboxFormatError(`'${s.slice(0, 40)}' holds a line break, which line protocol cannot carry`);
  return s.replace(/[\\, =]/g, (c) => `\\${c}`);
}

/** The measurement and tags of a series' lines; `suffix` names a tier's measurement (`_1m`: voltage_point_1m). */
export function lineHead(r: SeriesRef, suffix = ''): string {
  return r.kind === 'point'
    ? `${MEASUREMENT.point}${suffix},channel=${escapeTag(r.channel)},type=${r.type},point=${r.point}`
    : r.kind === 'model'
      ? `${MEASUREMENT.model}${suffix},model=${escapeTag(r.model)},name=${escapeTag(r.name)}`
      : r.kind === 'alarm'
        ? `${MEASUREMENT.alarm}${suffix},alarm=${escapeTag(r.alarm)}`
        : `${MEASUREMENT.command}${suffix},model=${escapeTag(r.model)},name=${escapeTag(r.name)}`;
}

/** One sample as one line of InfluxDB line protocol, timestamp in ms (write with precision=ms). */
export function toLine(s: HistorySample): string {
  const head = lineHead(s.series);
  let fields = s.value === null ? `quality=${QUALITY_CODE[s.quality]}i` : `value=${String(s.value)},quality=${QUALITY_CODE[s.quality]}i`;
  if (s.fields) for (const k in s.fields) fields += `,${k}=${String(s.fields[k])}`;
  return `${head} ${fields} ${s.ts}`;
}

/** Splits at unescaped `sep`, keeping the escapes (unescape each part afterwards). */
function splitRaw(s: string, sep: string): string[] {
  const out: string[] = [];
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '\\') i++;
    else if (s[i] === sep) {
      out.push(s.slice(start, i));
      start = i + 1;
    }
  }
  out.push(s.slice(start));
  return out;
}

const unescapeTag = (s: string) => s.replace(/\\(.)/g, '$1');

/** The inverse of toLine (for tests and tools; the writer never reads lines back). */
export function parseLine(line: string): HistorySample {
  // The tag part ends at the first unescaped space.
  let i = 0;
  for (; i < line.length; i++) {
    if (line[i] === '\\') i++;
    else if (line[i] === ' ') break;
  }
  const rest = line.slice(i + 1).split(' ');
  if (rest.length !== 2) throw new OutboxFormatError(`line '${line.slice(0, 60)}' is not "tags fields ts"`);
  const [measurement, ...tagList] = splitRaw(line.slice(0, i), ',');
  const tags = new Map(
    tagList.map((t) => {
      const [k, v] = splitRaw(t, '=');
      return [unescapeTag(k!), unescapeTag(v ?? '')] as const;
    }),
  );
  const fields = new Map(rest[0]!.split(',').map((kv) => kv.split('=') as [string, string]));
  const qCode = Number((fields.get('quality') ?? '').replace(/i$/, ''));
  const quality = QUALITY_OF[qCode];
  if (quality === undefined) throw new OutboxFormatError(`line '${line.slice(0, 60)}': bad quality field`);
  const v = fields.get('value');
  const ts = Number(rest[1]);
  const extra: Record<string, number> = {};
  for (const [k, x] of fields) if (k !== 'value' && k !== 'quality') extra[k] = Number(x);
  const series: SeriesRef =
    measurement === MEASUREMENT.point
      ? { kind: 'point', channel: tags.get('channel') ?? '', type: (tags.get('type') ?? 'm') as PointType, point: Number(tags.get('point')) }
      : measurement === MEASUREMENT.alarm
        ? { kind: 'alarm', alarm: tags.get('alarm') ?? '' }
        : { kind: measurement === MEASUREMENT.command ? 'command' : 'model', model: tags.get('model') ?? '', name: tags.get('name') ?? '' };
  const sample: HistorySample = { series, ts, value: v === undefined ? null : Number(v), quality };
  return Object.keys(extra).length > 0 ? { ...sample, fields: extra } : sample;
}

// ---- series ids ----

/** `channel/1001/m/3`, `model/pv1/P` (the name is everything after the model: it may hold '/'), `alarm/bess1.overtemp` or `command/bess1/Pset`. */
export function seriesId(r: SeriesRef): string {
  if (r.kind === 'alarm') return `alarm/${r.alarm}`;
  if (r.kind === 'command') return `command/${r.model}/${r.name}`;
  return r.kind === 'point' ? `channel/${r.channel}/${r.type}/${r.point}` : `model/${r.model}/${r.name}`;
}

export function parseSeriesId(id: string): SeriesRef {
  const p = /^channel\/([\w-]+)\/([msca])\/(\d+)$/.exec(id);
  if (p) return { kind: 'point', channel: p[1]!, type: p[2] as PointType, point: Number(p[3]) };
  const m = /^model\/([^/]+)\/(.+)$/.exec(id);
  if (m) return { kind: 'model', model: m[1]!, name: m[2]! };
  const a = /^alarm\/(.+)$/.exec(id);
  if (a) return { kind: 'alarm', alarm: a[1]! };
  const k = /^command\/([^/]+)\/(.+)$/.exec(id);
  if (k) return { kind: 'command', model: k[1]!, name: k[2]! };
  throw new OutboxFormatError(
    `'${id}' is not a series id: use channel/<channel>/<m|s|c|a>/<point>, model/<model>/<name>, alarm/<id> or command/<model>/<control>`,
    { series: id },
  );
}

/** The PromQL label matchers of a series, `{model="pv1",name="P"}`: beside a metric name (a tier's, say) they select it. */
export function promLabels(r: SeriesRef): string {
  const q = (s: string) => JSON.stringify(s);
  if (r.kind === 'point') return `{channel=${q(r.channel)},type=${q(r.type)},point=${q(String(r.point))}}`;
  if (r.kind === 'alarm') return `{alarm=${q(r.alarm)}}`;
  return `{model=${q(r.model)},name=${q(r.name)}}`;
}

/** The PromQL selector of a series' value or quality. */
export function promSelector(r: SeriesRef, field: 'value' | 'quality' = 'value'): string {
  const q = (s: string) => JSON.stringify(s);
  if (r.kind === 'alarm') return `${field === 'value' ? METRIC.alarmValue : METRIC.alarmQuality}{alarm=${q(r.alarm)}}`;
  if (r.kind === 'command') return `${field === 'value' ? METRIC.commandValue : METRIC.commandStatus}{model=${q(r.model)},name=${q(r.name)}}`;
  return r.kind === 'point'
    ? `${field === 'value' ? METRIC.pointValue : METRIC.pointQuality}{channel=${q(r.channel)},type=${q(r.type)},point=${q(String(r.point))}}`
    : `${field === 'value' ? METRIC.modelValue : METRIC.modelQuality}{model=${q(r.model)},name=${q(r.name)}}`;
}

/** The series of a Prometheus label set, or undefined when it is not one of ours. */
export function seriesOfLabels(labels: Readonly<Record<string, string>>): SeriesRef | undefined {
  const name = labels.__name__;
  if (name === METRIC.pointValue || name === METRIC.pointQuality) {
    const { channel, type, point } = labels;
    if (channel && type && /^[msca]$/.test(type) && point && /^\d+$/.test(point))
      return { kind: 'point', channel, type: type as PointType, point: Number(point) };
  }
  if ((name === METRIC.alarmValue || name === METRIC.alarmQuality) && labels.alarm) return { kind: 'alarm', alarm: labels.alarm };
  if ((name === METRIC.commandValue || name === METRIC.commandStatus) && labels.model && labels.name)
    return { kind: 'command', model: labels.model, name: labels.name };
  if (name === METRIC.modelValue || name === METRIC.modelQuality) {
    const { model, name: n } = labels;
    if (model && n) return { kind: 'model', model, name: n };
  }
  return undefined;
}
