/**
 * Supervisor with Erlang/OTP semantics, plus Akka-style restart backoff.
 *
 * The laws, stated once (test/unit/supervisor.property.test.ts checks them):
 *  1. Children start in the order of their specs and stop in reverse order.
 *     A child that does not stop within its `shutdownMs` is killed and the
 *     stop goes on with the next one.
 *  2. Restart types: `permanent` children are always restarted; `transient`
 *     ones only after an abnormal exit (an error); `temporary` ones never, and
 *     are removed from the supervisor when they exit.
 *  3. Strategies: `one_for_one` restarts only the failed child; `one_for_all`
 *     stops every other child (reverse order) and restarts all in order;
 *     `rest_for_one` stops the children started after the failed one (reverse
 *     order) and restarts the failed one and those, in order.
 *  4. Intensity: every restart is counted, over all children. When a restart
 *     would make more than `intensity` restarts within the last `periodMs`, the
 *     supervisor restarts nothing, stops all its children (law 1) and exits
 *     with an EscalationError naming the child; its parent then decides.
 *  5. Backoff: the restart of a child waits backoffDelay(policy, attempt); the
 *     child's attempt counter grows by one a restart and returns to 0 once the
 *     child has run `resetBackoffAfterMs` without failing.
 *  6. A child's own exit while the supervisor is stopping it is not a failure.
 *
 * It never knows what a child is: a child is anything that can be started,
 * stopped and reports its exit (an XState actor adapter, another supervisor).
 */
import { backoffDelay, defaultBackoff, type BackoffPolicy } from './backoff.js';
import { systemClock, type Clock, type TimerHandle } from './clock.js';
import { VoltageError, errorMessage } from './errors.js';

export type Strategy = 'one_for_one' | 'one_for_all' | 'rest_for_one';
export type RestartType = 'permanent' | 'transient' | 'temporary';

export type ExitReason =
  | { readonly kind: 'normal' }
  | { readonly kind: 'error'; readonly error: unknown };

/** A started child. `onExit` fires at most once, for exits the supervisor did not ask for. */
export interface RunningChild {
  stop(): Promise<void>;
  /** Forceful end, called when `stop()` outlives `shutdownMs`. */
  kill?(): void;
  onExit(listener: (reason: ExitReason) => void): void;
}

export interface ChildSpec {
  readonly id: string;
  readonly restart: RestartType;
  readonly shutdownMs: number;
  readonly type: 'worker' | 'supervisor';
  start(): Promise<RunningChild>;
}

export interface SupervisorOptions {
  readonly id: string;
  readonly strategy: Strategy;
  /** Max restarts within `periodMs` (OTP's MaxR / MaxT). */
  readonly intensity: number;
  readonly periodMs: number;
  readonly backoff?: BackoffPolicy;
  readonly clock?: Clock;
  readonly random?: () => number;
  /** Observer for the actor registry, logs and metrics. Must not throw. */
  readonly onEvent?: (event: SupervisorEvent) => void;
}

export type ChildStatus = 'starting' | 'running' | 'backoff' | 'stopped' | 'exited';

export type SupervisorEvent =
  | { readonly type: 'started'; readonly supervisor: string; readonly child: string }
  | { readonly type: 'exited'; readonly supervisor: string; readonly child: string; readonly reason: ExitReason }
  | { readonly type: 'restart_scheduled'; readonly supervisor: string; readonly child: string; readonly attempt: number; readonly delayMs: number; readonly restarts: number }
  | { readonly type: 'stopped'; readonly supervisor: string; readonly child: string; readonly killed: boolean }
  | { readonly type: 'escalated'; readonly supervisor: string; readonly child: string; readonly error: EscalationError };

export class EscalationError extends VoltageError {
  constructor(supervisor: string, child: string, intensity: number, periodMs: number, cause: unknown) {
    super(
      'runtime',
      'RESTART_INTENSITY',
      `supervisor '${supervisor}': child '${child}' exceeded the restart intensity of ${intensity} restart(s) in ${periodMs} ms (last failure: ${errorMessage(cause)})`,
      { supervisor, child, intensity, periodMs },
      { cause },
    );
    this.name = 'EscalationError';
  }
}

interface ChildState {
  readonly spec: ChildSpec;
  status: ChildStatus;
  running: RunningChild | undefined;
  /** Bumped at each start, so that a late exit of an old incarnation is ignored. */
  generation: number;
  startedAt: number;
  attempt: number;
  restarts: number;
  timer: TimerHandle | undefined;
  nextRestartAt: number | undefined;
}

export interface ChildInfo {
  readonly id: string;
  readonly type: 'worker' | 'supervisor';
  readonly status: ChildStatus;
  readonly restarts: number;
  readonly attempt: number;
  readonly nextRestartAt: number | undefined;
}

export class Supervisor {
  readonly id: string;
  private readonly opts: SupervisorOptions;
  private readonly clock: Clock;
  private readonly backoff: BackoffPolicy;
  private readonly random: () => number;
  private readonly children: ChildState[] = [];
  private restartTimes: number[] = [];
  private stopping = false;
  private exitListener: ((reason: ExitReason) => void) | undefined;

  constructor(opts: SupervisorOptions, specs: readonly ChildSpec[]) {
    this.id = opts.id;
    this.opts = opts;
    this.clock = opts.clock ?? systemClock;
    this.backoff = opts.backoff ?? defaultBackoff;
    this.random = opts.random ?? Math.random;
    const seen = new Set<string>();
    for (const spec of specs) {
      if (seen.has(spec.id)) throw new VoltageError('runtime', 'DUPLICATE_CHILD', `supervisor '${this.id}': duplicate child id '${spec.id}'`);
      seen.add(spec.id);
      this.children.push({ spec, status: 'stopped', running: undefined, generation: 0, startedAt: 0, attempt: 0, restarts: 0, timer: undefined, nextRestartAt: undefined });
    }
  }

  /** Starts the children in order. If one fails to start, the started ones are stopped and the error is thrown. */
  async start(): Promise<void> {
    for (const c of this.children) {
      try {
        await this.startChild(c);
      } catch (e) {
        await this.stopChildren(this.children);
        throw e;
      }
    }
  }

  /** Stops every child in reverse order. The supervisor does not report an exit for this. */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.stopChildren(this.children);
  }

  onExit(listener: (reason: ExitReason) => void): void {
    this.exitListener = listener;
  }

  info(): ChildInfo[] {
    return this.children.map((c) => ({
      id: c.spec.id, type: c.spec.type, status: c.status, restarts: c.restarts, attempt: c.attempt, nextRestartAt: c.nextRestartAt,
    }));
  }

  /** A ChildSpec that runs a (new, on each restart) supervisor under another one. */
  static asChild(id: string, make: () => Supervisor, restart: RestartType = 'permanent', shutdownMs = 30_000): ChildSpec {
    return {
      id, restart, shutdownMs, type: 'supervisor',
      async start() {
        const sup = make();
        await sup.start();
        return sup;
      },
    };
  }

  private emit(event: SupervisorEvent): void {
    try { this.opts.onEvent?.(event); } catch { /* an observer must not break supervision */ }
  }

  private async startChild(c: ChildState): Promise<void> {
    c.status = 'starting';
    c.timer = undefined;
    c.nextRestartAt = undefined;
    const generation = ++c.generation;
    const running = await c.spec.start();
    if (this.stopping || generation !== c.generation) {
      await running.stop();
      return;
    }
    c.running = running;
    c.status = 'running';
    c.startedAt = this.clock.now();
    running.onExit((reason) => this.childExited(c, generation, reason));
    this.emit({ type: 'started', supervisor: this.id, child: c.spec.id });
  }

  private childExited(c: ChildState, generation: number, reason: ExitReason): void {
    if (this.stopping || generation !== c.generation || c.status !== 'running') return;
    c.running = undefined;
    c.status = 'exited';
    this.emit({ type: 'exited', supervisor: this.id, child: c.spec.id, reason });
    const wantsRestart = c.spec.restart === 'permanent' || (c.spec.restart === 'transient' && reason.kind === 'error');
    if (c.spec.restart === 'temporary') this.remove(c);
    if (!wantsRestart) return;
    this.failed(c, reason.kind === 'error' ? reason.error : new Error('exited normally'));
  }

  /** Law 4 then law 3: count the restart, escalate or stop the group and schedule its restart. */
  private failed(c: ChildState, cause: unknown): void {
    const now = this.clock.now();
    this.restartTimes = this.restartTimes.filter((t) => t > now - this.opts.periodMs);
    this.restartTimes.push(now);
    if (this.restartTimes.length > this.opts.intensity) {
      void this.escalate(c, cause);
      return;
    }
    if (now - c.startedAt >= this.backoff.resetBackoffAfterMs) c.attempt = 0;
    const delayMs = backoffDelay(this.backoff, c.attempt, this.random());
    c.attempt += 1;
    c.restarts += 1;
    const group = this.groupOf(c);
    for (const g of group) {
      if (g.timer) this.clock.clearTimeout(g.timer);
      g.timer = undefined;
    }
    const siblings = group.filter((g) => g !== c && g.running);
    const restartSet = group.filter((g) => g === c || g.running || g.status === 'backoff');
    this.emit({ type: 'restart_scheduled', supervisor: this.id, child: c.spec.id, attempt: c.attempt, delayMs, restarts: c.restarts });
    void this.stopChildren(siblings).then(() => {
      for (const g of siblings) if (g.spec.restart === 'temporary') this.remove(g);
      const toStart = restartSet.filter((g) => this.children.includes(g));
      for (const g of toStart) {
        g.status = 'backoff';
        g.nextRestartAt = now + delayMs;
      }
      const timer = this.clock.setTimeout(() => void this.restartGroup(toStart), delayMs);
      for (const g of toStart) g.timer = timer;
    });
  }

  private async restartGroup(group: ChildState[]): Promise<void> {
    for (const g of group) {
      if (this.stopping || g.status !== 'backoff') continue;
      try {
        await this.startChild(g);
      } catch (e) {
        g.status = 'exited';
        this.emit({ type: 'exited', supervisor: this.id, child: g.spec.id, reason: { kind: 'error', error: e } });
        this.failed(g, e);
        return;
      }
    }
  }

  private groupOf(c: ChildState): ChildState[] {
    switch (this.opts.strategy) {
      case 'one_for_one': return [c];
      case 'one_for_all': return [...this.children];
      case 'rest_for_one': return this.children.slice(this.children.indexOf(c));
    }
  }

  private remove(c: ChildState): void {
    const i = this.children.indexOf(c);
    if (i >= 0) this.children.splice(i, 1);
  }

  private async escalate(c: ChildState, cause: unknown): Promise<void> {
    this.stopping = true;
    const error = new EscalationError(this.id, c.spec.id, this.opts.intensity, this.opts.periodMs, cause);
    await this.stopChildren(this.children);
    this.emit({ type: 'escalated', supervisor: this.id, child: c.spec.id, error });
    this.exitListener?.({ kind: 'error', error });
  }

  /** Law 1: reverse order, each bounded by its shutdown timeout. */
  private async stopChildren(list: readonly ChildState[]): Promise<void> {
    for (const c of [...list].reverse()) {
      if (c.timer) this.clock.clearTimeout(c.timer);
      c.timer = undefined;
      c.nextRestartAt = undefined;
      const running = c.running;
      c.running = undefined;
      c.generation += 1;
      if (!running) {
        if (c.status === 'backoff') {
          c.status = 'stopped';
          this.emit({ type: 'stopped', supervisor: this.id, child: c.spec.id, killed: false });
        }
        continue;
      }
      c.status = 'stopped';
      let killed = false;
      let timer: TimerHandle | undefined;
      const timeout = new Promise<void>((resolve) => {
        timer = this.clock.setTimeout(() => { killed = true; resolve(); }, c.spec.shutdownMs);
      });
      await Promise.race([running.stop().catch(() => undefined), timeout]);
      if (timer) this.clock.clearTimeout(timer);
      if (killed) running.kill?.();
      this.emit({ type: 'stopped', supervisor: this.id, child: c.spec.id, killed });
    }
  }
}
