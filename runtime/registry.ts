/**
 * What the tree looks like, kept in Redis (`actor:{id}` hashes and the
 * `actors` set) so that `voltage status` and, later, the visualizer can show
 * it, even while the runtime is down. Fed by supervisor events and actor
 * snapshots. Snapshot reports are throttled per actor: a change of top-level
 * state is written at once, finer changes at most once per `minIntervalMs`.
 */
import type { Logger } from './logger.js';
import type { TransitionEntry } from './domain/actors.js';
import type { VoltageRedis } from './redis/voltageRedis.js';
import type { SupervisorEvent } from './supervisor.js';
import { errorMessage } from './errors.js';

const topOf = (value: unknown): string => (typeof value === 'string' ? value : (Object.keys(value as object)[0] ?? ''));

export type ActorStatus = 'starting' | 'running' | 'backoff' | 'stopped' | 'failed' | 'done' | 'escalated';

/**
 * A snapshot's report that its actor writes itself, with a commit of its own (a rule's step:
 * rule_commit writes it in the same call); `fields` and `transition` as report() would write them.
 */
export interface PreparedReport {
  readonly actor: string;
  readonly fields: { readonly state: string; readonly context: string; readonly updatedAt: number };
  readonly transition?: TransitionEntry;
  readonly top: string;
  readonly latest: Pending['latest'];
}

interface Pending {
  latest: { value: unknown; summary: () => Record<string, unknown>; event: string };
  /** The state value last written, as JSON: a flush that changes it is journaled. */
  written: string;
  timer: NodeJS.Timeout | undefined;
  lastAt: number;
  lastTop: string;
}

export class ActorRegistry {
  private readonly pending = new Map<string, Pending>();
  private readonly known = new Map<string, Record<string, string | number>>();
  private readonly statusListeners = new Set<(counts: Record<string, number>) => void>();

  constructor(
    private readonly redis: VoltageRedis,
    private readonly log: Logger,
    private readonly minIntervalMs = 1_000,
  ) {}

  /** Writes an actor's entry now (merged with what is known of it), with an entry of its journal when given (one call). */
  report(id: string, fields: Record<string, string | number>, transition?: TransitionEntry): void {
    const before = this.known.get(id);
    const merged = { ...before, ...fields, updatedAt: Date.now() };
    this.known.set(id, merged);
    if (fields.status !== undefined && fields.status !== before?.status && this.statusListeners.size > 0) {
      const counts = this.statusCounts();
      for (const l of this.statusListeners) l(counts);
    }
    this.redis.actors.report(id, { ...fields, updatedAt: merged.updatedAt }, transition).catch((e: unknown) => {
      this.log.warn({ actor: id, err: e }, 'could not record actor state');
    });
  }

  declare(id: string, kind: string, parent: string, extra: Record<string, string | number> = {}): void {
    this.report(id, { kind, parent, status: 'stopped', state: '""', restarts: 0, nextBackoffMs: 0, backoffUntil: 0, lastError: '', ...extra });
  }

  /** This process's actors counted by status. */
  statusCounts(): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const fields of this.known.values()) {
      const status = String(fields.status ?? 'unknown');
      counts[status] = (counts[status] ?? 0) + 1;
    }
    return counts;
  }

  /** Calls `listener` with the new counts whenever an actor's status changes; returns the unsubscribe. */
  onStatusChange(listener: (counts: Record<string, number>) => void): () => void {
    this.statusListeners.add(listener);
    return () => {
      this.statusListeners.delete(listener);
    };
  }

  /** Every entry known to this process, written again (after Redis lost them). */
  reportAll(): void {
    for (const [id, fields] of this.known) this.report(id, fields);
  }

  /**
   * A machine's snapshot: `value` is its state value, `summary()` gives a small
   * summary of its context. Called on every transition, so nothing is
   * serialized unless it is written (a change of top-level state, or at most
   * once per `minIntervalMs`).
   */
  snapshot(id: string, value: unknown, summary: () => Record<string, unknown>, event = ''): void {
    const top = topOf(value);
    const p = this.pendingOf(id, { value, summary, event });
    const now = Date.now();
    if (this.due(p, top, now)) {
      this.flush(id, p, top);
    } else if (!p.timer) {
      const pending = p;
      p.timer = setTimeout(() => this.flush(id, pending, pending.lastTop), this.minIntervalMs - (now - p.lastAt));
    }
  }

  /**
   * The report snapshot() would write now, for the actor to write with a commit of its own (one call, not
   * two), or undefined when none is due now (then snapshot() after the commit throttles as usual). Nothing
   * changes here until `wrote` says it was written.
   */
  prepare(id: string, value: unknown, summary: () => Record<string, unknown>, event = ''): PreparedReport | undefined {
    const top = topOf(value);
    const p = this.pending.get(id);
    const now = Date.now();
    if (p && !this.due(p, top, now)) return undefined;
    const state = JSON.stringify(value);
    const written = p?.written ?? '';
    return {
      actor: id,
      fields: { state, context: JSON.stringify(summary()), updatedAt: now },
      ...(state !== written ? { transition: { ts: now, event, from: written, to: state } } : {}),
      top,
      latest: { value, summary, event },
    };
  }

  /** A prepared report was written (by its actor's commit): known, and the throttle counts from it. */
  wrote(r: PreparedReport): void {
    const p = this.pendingOf(r.actor, r.latest);
    if (p.timer) clearTimeout(p.timer);
    p.timer = undefined;
    p.lastAt = r.fields.updatedAt;
    p.lastTop = r.top;
    p.written = r.fields.state;
    this.known.set(r.actor, { ...this.known.get(r.actor), ...r.fields });
  }

  private pendingOf(id: string, latest: Pending['latest']): Pending {
    let p = this.pending.get(id);
    if (!p) {
      p = { latest, written: '', timer: undefined, lastAt: 0, lastTop: '' };
      this.pending.set(id, p);
    }
    p.latest = latest;
    return p;
  }

  /** Whether a snapshot is written now: a change of top-level state, or the interval since the last write passed. */
  private due(p: Pending, top: string, now: number): boolean {
    return top !== p.lastTop || now - p.lastAt >= this.minIntervalMs;
  }

  private flush(id: string, p: Pending, top: string): void {
    if (p.timer) clearTimeout(p.timer);
    p.timer = undefined;
    p.lastAt = Date.now();
    p.lastTop = top;
    const state = JSON.stringify(p.latest.value);
    // Journaled as often as written (a nested change at most once per minIntervalMs), so a busy actor costs no more;
    // in the report's own call (a rule firing reports a step: one round trip, not two).
    const transition = state !== p.written ? { ts: p.lastAt, event: p.latest.event, from: p.written, to: state } : undefined;
    p.written = state;
    this.report(id, { state, context: JSON.stringify(p.latest.summary()) }, transition);
  }

  /** An entry in the actor's transitions journal (runtime/redis/transitions.ts). */
  journal(id: string, entry: TransitionEntry): void {
    this.redis.actors.appendTransition(id, entry).catch((e: unknown) => {
      this.log.warn({ actor: id, err: e }, 'could not journal a transition');
    });
  }

  /** Supervisor events → status, restarts, backoff (child ids are actor ids). */
  onSupervisorEvent(e: SupervisorEvent): void {
    switch (e.type) {
      case 'started':
        this.report(e.child, { status: 'running', startedAt: Date.now(), nextBackoffMs: 0, backoffUntil: 0 });
        break;
      case 'exited':
        this.report(e.child, e.reason.kind === 'error' ? { status: 'failed', lastError: errorMessage(e.reason.error) } : { status: 'done' });
        this.exitJournal(e.child, e.reason.kind === 'error' ? errorMessage(e.reason.error) : undefined);
        if (e.reason.kind === 'error')
          this.log.warn({ actor: e.child, supervisor: e.supervisor, err: e.reason.error }, `actor ${e.child} failed: ${errorMessage(e.reason.error)}`);
        break;
      case 'restart_scheduled':
        this.report(e.child, { status: 'backoff', restarts: e.restarts, attempt: e.attempt, nextBackoffMs: e.delayMs, backoffUntil: Date.now() + e.delayMs });
        this.log.info({ actor: e.child, attempt: e.attempt, delayMs: e.delayMs }, `restarting ${e.child} in ${e.delayMs} ms (restart ${e.restarts})`);
        break;
      case 'stopped':
        this.report(e.child, { status: 'stopped', nextBackoffMs: 0, backoffUntil: 0 });
        break;
      case 'escalated':
        this.report(e.supervisor, { status: 'escalated', lastError: e.error.message });
        this.log.error({ supervisor: e.supervisor, child: e.child, err: e.error }, e.error.message);
        break;
    }
  }

  /** The actor's end in its journal; its next start begins a new run. */
  private exitJournal(id: string, error: string | undefined): void {
    const p = this.pending.get(id);
    this.journal(id, {
      ts: Date.now(),
      event: error === undefined ? 'done' : 'failed',
      from: p?.written ?? '',
      to: '',
      ...(error === undefined ? {} : { error }),
    });
    if (p) p.written = '';
  }

  dispose(): void {
    for (const p of this.pending.values()) if (p.timer) clearTimeout(p.timer);
    this.pending.clear();
  }
}
