/**
 * One poll's points as the text c2m parses ("type id value quality\n" a point),
 * written into a buffer that a channel reuses poll after poll: at 1,000 polls/s
 * of 100 points, building strings and objects per point was a third of what the
 * runtime allocated. Reuse it only after the c2m that sent it has settled.
 */
import type { PointType } from '../config/site.js';
import { formatValue, type PointSample, type Quality } from './telemetry.js';

export class C2mBatch {
  private buf = Buffer.allocUnsafe(4096);
  private len = 0;
  /** Points added since the last clear. */
  count = 0;

  static of(points: readonly PointSample[]): C2mBatch {
    const b = new C2mBatch();
    for (const p of points) b.add(p.type, p.id, p.value, p.quality);
    return b;
  }

  clear(): void {
    this.len = 0;
    this.count = 0;
  }

  /** A value of null: none this time (a quality mark); a quality of null: unchanged (see PointSample). */
  add(type: PointType, id: number, value: number | null, quality: Quality | null): void {
    // Values are checked here, where they are made, so that c2m need not parse each number again.
    if (value !== null && !(Math.abs(value) < 1e21)) throw new RangeError(`value of ${type}:${id} is not a finite number below 1e21: ${value}`);
    if (!Number.isSafeInteger(id) || id < 0) throw new RangeError(`point id of ${type}:${id} is not a non-negative integer`);
    const text = value === null ? '' : formatValue(value);
    const need = this.len + text.length + 40; // type, id, quality, separators
    if (need > this.buf.length) {
      const grown = Buffer.allocUnsafe(Math.max(need, this.buf.length * 2));
      this.buf.copy(grown, 0, 0, this.len);
      this.buf = grown;
    }
    let n = this.len;
    n += this.buf.write(type, n, 'latin1');
    this.buf[n++] = 0x20;
    n += this.buf.write(String(id), n, 'latin1');
    this.buf[n++] = 0x20;
    n += this.buf.write(text, n, 'latin1');
    this.buf[n++] = 0x20;
    if (quality !== null) n += this.buf.write(quality, n, 'latin1');
    this.buf[n++] = 0x0a;
    this.len = n;
    this.count += 1;
  }

  /** The text so far (a view: valid until the next add or clear). */
  bytes(): Buffer {
    return this.buf.subarray(0, this.len);
  }
}

/**
 * The points of a c2m text back as samples: what the channel notification
 * (`{ts}\n{text}`) and the outbox entries carry. The text was validated by c2m,
 * so a line that does not parse is skipped rather than thrown on.
 */
export function parsePoints(text: string, from = 0): PointSample[] {
  const out: PointSample[] = [];
  let pos = from;
  while (pos < text.length) {
    let end = text.indexOf('\n', pos);
    if (end < 0) end = text.length;
    // "type id value quality": three spaces, value and quality possibly empty.
    const a = text.indexOf(' ', pos);
    const b = a < 0 ? -1 : text.indexOf(' ', a + 1);
    const c = b < 0 ? -1 : text.indexOf(' ', b + 1);
    if (a > pos && b > a && c > b && c < end) {
      const v = text.slice(b + 1, c);
      const q = text.slice(c + 1, end);
      out.push({ type: text.slice(pos, a) as PointType, id: Number(text.slice(a + 1, b)), value: v === '' ? null : Number(v), quality: q === '' ? null : (q as Quality) });
    }
    pos = end + 1;
  }
  return out;
}

/** A channel notification: the poll's time and its points. */
export function parseChannelUpdate(msg: string): { ts: number; points: PointSample[] } {
  const nl = msg.indexOf('\n');
  if (nl < 0) return { ts: Number(msg), points: [] };
  return { ts: Number(msg.slice(0, nl)), points: parsePoints(msg, nl + 1) };
}
