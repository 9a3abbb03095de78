/**
 * How values travel as Redis strings, both ways: the optional numbers that
 * Functions take as '' for none, the field lists of stream entries, and the
 * three hashes (value, timestamp, quality) a channel or model keeps.
 */
import { formatValue, type Quality, type ValueRecord } from '../domain/telemetry.js';

/** A number with fixed precision, or '' for none (as the Functions read it). */
export function formatOptional(v: number | null): string {
  return v === null ? '' : formatValue(v);
}

/** A stream entry's flat [field, value, …] list as a record. */
export function fieldsOf(fields: readonly string[]): Record<string, string> {
  const f: Record<string, string> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i]!] = fields[i + 1]!;
  return f;
}

/** The values, timestamps and qualities hashes of one channel type or model, merged by name. */
export function valueRecords(vals: Record<string, string>, tss: Record<string, string>, qs: Record<string, string>): Map<string, ValueRecord> {
  const out = new Map<string, ValueRecord>();
  for (const name of new Set([...Object.keys(vals), ...Object.keys(qs)])) {
    out.set(name, {
      value: vals[name] !== undefined ? Number(vals[name]) : null,
      ts: tss[name] !== undefined ? Number(tss[name]) : null,
      quality: (qs[name] as Quality | undefined) ?? null,
    });
  }
  return out;
}

/** Orders two stream entry ids (`ms-seq`): negative when `a` is older, 0 when equal, positive when newer. */
export function compareIds(a: string, b: string): number {
  const [am, as] = a.split('-').map(Number) as [number, number];
  const [bm, bs] = b.split('-').map(Number) as [number, number];
  return am - bm || as - bs;
}
