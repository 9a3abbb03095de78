/**
 * What history keeps of each series (runtime/config/history.ts, HistoryKeep):
 * the writer passes every decoded sample through a KeepFilter, which drops
 * what is `off`, passes what is `on-change`, turns `interval` series into the
 * last value of each interval, and adds the heartbeat samples of `maxGapMs`.
 * Pure: no I/O, no clock (the writer gives it the time it may close up to).
 *
 * Laws (test/unit/history-keep.test.ts):
 * - a series with no policy, or on-change without a heartbeat, costs a map
 *   lookup and nothing else (the common case at 100k points/s);
 * - interval I: the value written at t (a multiple of I) is the last sample
 *   with a timestamp in (t − I, t]; an interval without a sample gets nothing
 *   but a heartbeat; it is written once the clock has passed t;
 * - heartbeat G: between two written samples there is no gap longer than G
 *   (interval: G rounded up to a multiple of I) up to the clock; a heartbeat
 *   repeats the last written value and quality;
 * - a sample older than what was written already (a window written again
 *   after a database failure: `again`) passes unchanged for on-change and is
 *   dropped for interval, and changes no state: the writer keeps what it
 *   derived (interval values, heartbeats) in its window and writes those
 *   again itself.
 *
 * The state (last written and pending sample of each stateful series) is
 * exported as the dirty entries of a batch so that the writer can keep it in
 * Redis beside the acknowledgement: a restart neither loses an open interval
 * nor forgets a heartbeat.
 */
import type { HistoryKeep } from '../../runtime/config/history.js';
import type { HistorySample } from './outbox.js';

interface Written {
  readonly ts: number;
  readonly value: number | null;
  readonly quality: HistorySample['quality'];
}

interface SeriesState {
  last?: Written;
  /** interval: the last sample of the open interval, stamped at its end. */
  pending?: Written;
}

/** The key of a series in the policies (and in the kept state): its series id. */
export type KeepPolicies = ReadonlyMap<string, HistoryKeep>;

export class KeepFilter {
  private readonly states = new Map<string, { readonly sample: HistorySample; readonly state: SeriesState }>();
  private readonly dirty = new Set<string>();

  constructor(private readonly policies: KeepPolicies) {}

  /** No series has a policy other than plain on-change: the writer may skip the filter. */
  get trivial(): boolean {
    for (const k of this.policies.values()) if (k.mode !== 'on-change' || k.maxGapMs !== undefined) return false;
    return true;
  }

  /**
   * Takes one sample of `key` (its series id): what is kept goes to `out`, and
   * what the filter made itself (interval values, heartbeats) to `derived` too.
   */
  take(key: string, s: HistorySample, out: HistorySample[], derived: HistorySample[]): void {
    const keep = this.policies.get(key);
    if (keep === undefined || (keep.mode === 'on-change' && keep.maxGapMs === undefined)) {
      out.push(s);
      return;
    }
    if (keep.mode === 'off') return;
    const st = this.stateOf(key, s);
    if (keep.mode === 'on-change') {
      if (st.last !== undefined && s.ts <= st.last.ts) {
        out.push(s); // written before: the window again
        return;
      }
      if (st.last !== undefined) this.beat(s, st, keep.maxGapMs!, 1, s.ts - 1, out, derived);
      out.push(s);
      st.last = s;
      this.dirty.add(key);
      return;
    }
    const end = Math.ceil(s.ts / keep.intervalMs) * keep.intervalMs;
    const at: Written = { ts: end, value: s.value, quality: s.quality };
    if (st.pending === undefined) {
      if (st.last !== undefined && end <= st.last.ts) return; // an interval written already
      st.pending = at;
    } else if (end === st.pending.ts) st.pending = at;
    else if (end > st.pending.ts) {
      this.emit(s, st, st.pending, out, derived);
      if (keep.maxGapMs !== undefined) this.beat(s, st, keep.maxGapMs, keep.intervalMs, end - 1, out, derived);
      st.pending = at;
    } else return; // older than the open interval
    this.dirty.add(key);
  }

  /**
   * A sample taken before, in the window written again (at the rewrite, or encoded ahead while the database is down): on-change
   * passes, interval and off keep nothing (the writer writes the window's derived lines itself), and no state changes. Through
   * take, a sample of the open interval would put an older value back into it than what the batches after the window held.
   */
  again(key: string, s: HistorySample, out: HistorySample[]): void {
    const keep = this.policies.get(key);
    if (keep === undefined || keep.mode === 'on-change') out.push(s);
  }

  /** Interval values and heartbeats due by `clock` (ms): intervals that ended at or before it close. */
  due(clock: number, out: HistorySample[]): void {
    for (const [key, { sample, state: st }] of this.states) {
      const keep = this.policies.get(key);
      if (keep === undefined || keep.mode === 'off') {
        this.states.delete(key); // the config changed
        continue;
      }
      const before = out.length;
      if (keep.mode === 'interval' && st.pending !== undefined && st.pending.ts <= clock) {
        this.emit(sample, st, st.pending, out, undefined);
        st.pending = undefined;
      }
      if (keep.maxGapMs !== undefined && st.last !== undefined)
        this.beat(sample, st, keep.maxGapMs, keep.mode === 'interval' ? keep.intervalMs : 1, clock, out, undefined);
      if (out.length > before) this.dirty.add(key);
    }
  }

  /** The state of the series changed since the last call, as [key, JSON] (to keep in Redis). */
  takeDirty(): Array<[string, string]> {
    const out: Array<[string, string]> = [];
    for (const key of this.dirty) {
      const e = this.states.get(key);
      if (e) out.push([key, JSON.stringify({ s: e.sample.series, l: e.state.last, p: e.state.pending })]);
    }
    this.dirty.clear();
    return out;
  }

  /**
   * The state kept in Redis (takeDirty's output, written when a batch is acknowledged), after a
   * restart or a reconnect: what the memory held beyond it came from batches not acknowledged,
   * whose entries are read again, so it is dropped first.
   */
  restore(entries: Readonly<Record<string, string>>): void {
    this.states.clear();
    this.dirty.clear();
    for (const [key, json] of Object.entries(entries)) {
      if (!this.policies.has(key)) continue;
      try {
        const v = JSON.parse(json) as { s: HistorySample['series']; l?: Written; p?: Written };
        const state: SeriesState = {};
        if (v.l) state.last = v.l;
        if (v.p) state.pending = v.p;
        this.states.set(key, { sample: { series: v.s, ts: 0, value: null, quality: 'good' }, state });
      } catch {
        // A state that does not parse is as if there were none: the next sample starts afresh.
      }
    }
  }

  private stateOf(key: string, s: HistorySample): SeriesState {
    let e = this.states.get(key);
    if (e === undefined) {
      e = { sample: s, state: {} };
      this.states.set(key, e);
    }
    return e.state;
  }

  private emit(like: HistorySample, st: SeriesState, w: Written, out: HistorySample[], derived: HistorySample[] | undefined): void {
    const s: HistorySample = { series: like.series, ts: w.ts, value: w.value, quality: w.quality };
    out.push(s);
    derived?.push(s);
    st.last = w;
  }

  /** Heartbeats after st.last, every `gap` rounded up to a multiple of `unit`, at or before `until`. */
  private beat(
    like: HistorySample,
    st: SeriesState,
    gap: number,
    unit: number,
    until: number,
    out: HistorySample[],
    derived: HistorySample[] | undefined,
  ): void {
    for (let n = 0; n < 100_000; n++) {
      const last = st.last!;
      const t = Math.ceil((last.ts + gap) / unit) * unit;
      if (t > until) return;
      this.emit(like, st, { ts: t, value: last.value, quality: last.quality }, out, derived);
    }
  }
}
