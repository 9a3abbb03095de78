/**
 * What a cloud link remembers per point between messages, and the deadband
 * law. Pure: no I/O (CloudLink reads and writes it).
 *
 * - `publish: on-change`: the last value (and quality) the link PUBLISHED for
 *   each point that has a deadband: the reference a new value is compared to.
 * - `publish: interval`: the latest value of each selected point, and the end
 *   of the interval being gathered (`bucketEnd`).
 *
 * It is kept in Redis (`cloud:{link}:last`, one field per point: `m/{model}/{name}`
 * or `c/{channel}/{type}:{id}` → "value quality", and `@bucket`), and the
 * changes a batch made are written by the MULTI that XACKs that batch's
 * entries: after a restart the link holds exactly the state of its last
 * acknowledged entry, and builds its pending entries again into the same
 * messages (the seqs they were given stay right), so a restart neither sends a
 * value the deadband held back nor loses one it let through.
 */
import type { Quality } from '../../runtime/domain/telemetry.js';

export interface PointState {
  /** null: a quality mark only (the device stopped answering). */
  readonly value: number | null;
  readonly quality: Quality;
}

/**
 * The deadband law: a point is sent when there is no band for it, nothing was
 * published for it yet, its quality changed, or its value moved more than the
 * band from the last value published. So, while the quality holds, the last
 * published value is never further than the band from the point's true value.
 */
export function passesDeadband(last: PointState | undefined, next: PointState, band: number | undefined): boolean {
  if (band === undefined || last === undefined || next.quality !== last.quality) return true;
  if (next.value === null || last.value === null) return next.value !== last.value;
  return Math.abs(next.value - last.value) > band;
}

/** A link's deadband in its object form (runtime/config/cloud.ts). */
export interface DeadbandConfig {
  readonly default?: number | undefined;
  readonly models: Readonly<Record<string, Readonly<Record<string, number>>>>;
  readonly channels: Readonly<Record<string, Readonly<Record<string, number>>>>;
}

/** The band of a point: its own, else the default, else none (always sent). */
export function bandOf(db: DeadbandConfig | undefined, kind: 'm' | 'c', owner: string, name: string): number | undefined {
  if (!db) return undefined;
  return (kind === 'm' ? db.models : db.channels)[owner]?.[name] ?? db.default;
}

/** A point's field in cloud:{link}:last. */
export const pointField = (kind: 'm' | 'c', owner: string, name: string) => `${kind}/${owner}/${name}`;
const BUCKET_FIELD = '@bucket';
const QUALITIES = new Set<string>(['good', 'stale', 'bad', 'comm-failure']);

export class LinkState {
  /** target (`m/pv1`, `c/1001`) → name → state. */
  private readonly targets = new Map<string, Map<string, PointState>>();
  private readonly changed = new Map<string, string>();
  private bucketChanged = false;
  private bucket = 0;

  /** The end (ms) of the interval being gathered; 0 before the first entry. */
  get bucketEnd(): number {
    return this.bucket;
  }

  set bucketEnd(v: number) {
    if (v === this.bucket) return;
    this.bucket = v;
    this.bucketChanged = true;
  }

  /** Replaces everything with what HGETALL of cloud:{link}:last returned; nothing is left to write. */
  load(hash: Readonly<Record<string, string>>): void {
    this.targets.clear();
    this.changed.clear();
    this.bucketChanged = false;
    this.bucket = Number(hash[BUCKET_FIELD] ?? 0) || 0;
    for (const [field, text] of Object.entries(hash)) {
      const cut = field.indexOf('/', 2);
      const sp = text.lastIndexOf(' ');
      if (field[1] !== '/' || cut < 0 || sp < 0) continue;
      const quality = text.slice(sp + 1);
      if (!QUALITIES.has(quality)) continue;
      const v = text.slice(0, sp);
      this.put(field.slice(0, cut), field.slice(cut + 1), { value: v === '' ? null : Number(v), quality: quality as Quality });
    }
  }

  get(kind: 'm' | 'c', owner: string, name: string): PointState | undefined {
    return this.targets.get(`${kind}/${owner}`)?.get(name);
  }

  set(kind: 'm' | 'c', owner: string, name: string, s: PointState): void {
    this.put(`${kind}/${owner}`, name, s);
    this.changed.set(pointField(kind, owner, name), `${s.value ?? ''} ${s.quality}`);
  }

  /** The field/value pairs changed since the last call (for the HSET beside the XACK), then forgets them. */
  takeChanges(): string[] {
    const out: string[] = [];
    for (const [f, v] of this.changed) out.push(f, v);
    if (this.bucketChanged) out.push(BUCKET_FIELD, String(this.bucket));
    this.changed.clear();
    this.bucketChanged = false;
    return out;
  }

  /** Every target with its points, sorted by target (the same order after a reload: a resend gives each snapshot message the seq it had). */
  sortedTargets(): Array<[kind: 'm' | 'c', owner: string, points: ReadonlyMap<string, PointState>]> {
    return [...this.targets.keys()].sort().map((t) => [t[0] as 'm' | 'c', t.slice(2), this.targets.get(t)!]);
  }

  private put(target: string, name: string, s: PointState): void {
    let m = this.targets.get(target);
    if (!m) {
      m = new Map();
      this.targets.set(target, m);
    }
    m.set(name, s);
  }
}
