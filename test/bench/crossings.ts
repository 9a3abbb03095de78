/**
 * What the alarm and rule benchmarks share: a site of virtual channels whose
 * points are sine waves (every point changes every poll), and a subscriber
 * that sees every `c2m` update and notes, for the points it watches, when a
 * value crossed a threshold — the generation timestamp of the poll that
 * carried it. An alarm event or a command that followed is matched to the
 * latest crossing of its point at or before it: its latency is from that
 * generation timestamp to the time Redis appended the event (a stream entry
 * id), on the same host clock.
 */
import type { Redis } from 'ioredis';
import { sleep, type SiteRun, type Windows } from './harness.js';
import { cpuPercent, cpuSample, hostSample, othersPercent, rssMb, stealPercent } from './procstat.js';

export interface SineSite {
  readonly channels: number;
  readonly points: number;
  readonly pollMs: number;
  readonly periodMs: number;
  /** Control points (`a`, named c1…cN) on each channel, mapped to the model's controls. */
  readonly controls?: number;
}

export function sineSiteFiles(site: SineSite, templateExtra = ''): Record<string, string> {
  const header = 'type,id,name,sim.kind,sim.amplitude,sim.offset,sim.periodMs,sim.phase\n';
  const rows: string[] = [];
  for (let i = 1; i <= site.points; i++) rows.push(`m,${i},p${i},sine,100,0,${site.periodMs},${((i / site.points) * 6.28).toFixed(4)}`);
  for (let i = 1; i <= (site.controls ?? 0); i++) rows.push(`a,${i},c${i},,,,,`);
  const channels: string[] = [];
  const models: string[] = [];
  for (let c = 0; c < site.channels; c++) {
    channels.push(`  - { id: ch${c}, protocol: virtual, pollMs: ${site.pollMs}, pointsFile: points.csv }`);
    const mapping = Array.from({ length: site.controls ?? 0 }, (_, i) => `c${i + 1}: "ch${c}:a:${i + 1}"`).join(', ');
    models.push(`  - { id: m${c}, template: device, channel: ch${c}${mapping ? `, mapping: { ${mapping} }` : ''} }`);
  }
  const measurements = Array.from({ length: site.points }, (_, i) => `      p${i + 1}: {}`).join('\n');
  const controls = site.controls ? `    controls:\n${Array.from({ length: site.controls }, (_, i) => `      c${i + 1}: {}`).join('\n')}\n` : '';
  return {
    'runtime.yaml': 'runtime:\n  site: bench\n  redis: { outboxMaxMB: 64 }\n  log: { level: warn }\n',
    'channels.yaml': `channels:\n${channels.join('\n')}\n`,
    'models.yaml': `templates:\n  device:\n    measurements:\n${measurements}\n${controls}${templateExtra}models:\n${models.join('\n')}\n`,
    'points.csv': `${header + rows.join('\n')}\n`,
  };
}

export interface Crossing {
  /** The generation timestamp of the poll that carried it. */
  readonly ts: number;
  /** When this process received the notification that carried it (the kernel's share ends there). */
  readonly at: number;
  readonly up: boolean;
}

/** Watches `model.name` points against a threshold through the `modsrv:*:update` notifications. */
export class Crossings {
  private readonly watched = new Map<string, Array<{ name: string; key: string; threshold: number }>>();
  private readonly last = new Map<string, number>();
  private readonly seen = new Map<string, Crossing[]>();
  /** Values and c2m updates seen while `measuring`. */
  points = 0;
  updates = 0;
  measuring = false;
  /** Generation → this subscriber, of every c2m notification seen while `measuring` (ms): the kernel's own latency. */
  readonly notified: number[] = [];

  constructor(points: ReadonlyArray<{ model: string; name: string; threshold: number }>) {
    for (const p of points) {
      const list = this.watched.get(p.model) ?? [];
      list.push({ name: p.name, key: `${p.model}.${p.name}`, threshold: p.threshold });
      this.watched.set(p.model, list);
    }
  }

  async subscribe(sub: Redis): Promise<void> {
    sub.on('pmessage', (_p: string, channel: string, msg: string) => this.onUpdate(channel.slice('modsrv:'.length, -':update'.length), msg));
    await sub.psubscribe('modsrv:*:update');
  }

  private onUpdate(model: string, msg: string): void {
    const at = Date.now();
    const u = JSON.parse(msg) as { ts: number; src?: string; v?: Record<string, number> };
    if (u.src !== 'c2m' || !u.v) return;
    if (this.measuring) {
      this.notified.push(at - u.ts);
      this.updates++;
      for (const _ in u.v) this.points++;
    }
    for (const w of this.watched.get(model) ?? []) {
      const value = u.v[w.name];
      if (value === undefined) continue;
      const before = this.last.get(w.key);
      this.last.set(w.key, value);
      if (before === undefined || before > w.threshold === value > w.threshold) continue;
      const list = this.seen.get(w.key) ?? [];
      list.push({ ts: u.ts, at, up: value > w.threshold });
      if (list.length > 64) list.splice(0, list.length - 64);
      this.seen.set(w.key, list);
    }
  }

  /**
   * From the latest crossing of `key` (in direction `up`, or either when undefined)
   * generated at or before `atMs` and not before `sinceMs`, to `atMs`; undefined when none.
   */
  latency(key: string, atMs: number, sinceMs: number, up?: boolean): number | undefined {
    const c = this.crossing(key, atMs, sinceMs, up);
    return c && atMs - c.ts;
  }

  /** The crossing that `latency` measures from, or undefined. */
  crossing(key: string, atMs: number, sinceMs: number, up?: boolean): Crossing | undefined {
    const list = this.seen.get(key) ?? [];
    for (let i = list.length - 1; i >= 0; i--) {
      const c = list[i]!;
      if (c.ts > atMs || (up !== undefined && c.up !== up)) continue;
      return c.ts >= sinceMs ? c : undefined;
    }
    return undefined;
  }
}

/** A stream's entries appended between two times (ms), as field maps with the entry's time. */
export async function entriesBetween(redis: Redis, stream: string, fromMs: number, toMs: number): Promise<Array<{ at: number; fields: Map<string, string> }>> {
  const out: Array<{ at: number; fields: Map<string, string> }> = [];
  let start = String(fromMs);
  for (;;) {
    const rows = await redis.xrange(stream, start, String(toMs), 'COUNT', 10_000);
    for (const [id, flat] of rows) {
      const fields = new Map<string, string>();
      for (let i = 0; i + 1 < flat.length; i += 2) fields.set(flat[i]!, flat[i + 1]!);
      out.push({ at: Number(id.split('-')[0]), fields });
    }
    if (rows.length < 10_000) return out;
    start = `(${rows[rows.length - 1]![0]}`;
  }
}

/** The points that `perModel` reactions watch on each model: every (points / perModel)-th, so that their crossings spread over the period. */
export function watchedPoints(
  site: SineSite,
  perModel: number,
  idOf: (model: number, k: number) => string,
): {
  watched: Array<{ model: string; name: string; threshold: number }>;
  pointOf: Map<string, string>;
} {
  const watched: Array<{ model: string; name: string; threshold: number }> = [];
  const pointOf = new Map<string, string>();
  for (let c = 0; c < site.channels; c++) {
    for (let k = 1; k <= perModel; k++) {
      const name = `p${(k * site.points) / perModel}`;
      watched.push({ model: `m${c}`, name, threshold: THRESHOLD });
      pointOf.set(idOf(c, k), `m${c}.${name}`);
    }
  }
  return { watched, pointOf };
}

export const THRESHOLD = 90;

export interface WindowResult {
  readonly t0: number;
  readonly t1: number;
  readonly seconds: number;
  readonly runtimeCpu: number;
  readonly redisCpu: number;
  readonly rssStart: number;
  readonly rssEnd: number;
  readonly steal: number;
  readonly others: number;
}

/** Warm-up, then one measured window with `crossings` counting: CPU, RSS at both ends, what else ran. */
export async function measureWindow(run: SiteRun, crossings: Crossings, windows: Windows): Promise<WindowResult> {
  await sleep(windows.warmupMs);
  const rt0 = cpuSample(run.runtime.pid!);
  const rd0 = cpuSample(run.redis.process.pid!);
  const host0 = hostSample();
  const rssStart = rssMb(run.runtime.pid!);
  const t0 = Date.now();
  crossings.measuring = true;
  await sleep(windows.measureMs);
  crossings.measuring = false;
  const t1 = Date.now();
  const runtimeCpu = cpuPercent(rt0, cpuSample(run.runtime.pid!));
  const redisCpu = cpuPercent(rd0, cpuSample(run.redis.process.pid!));
  const host1 = hostSample();
  return {
    t0,
    t1,
    seconds: (t1 - t0) / 1000,
    runtimeCpu,
    redisCpu,
    rssStart,
    rssEnd: rssMb(run.runtime.pid!),
    steal: stealPercent(host0, host1),
    others: othersPercent(host0, host1, [runtimeCpu, redisCpu]),
  };
}
