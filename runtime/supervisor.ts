/**
 * Supervisor with Erlang/OTP semantics, plus Akka-style restart backoff.
 *
 * The laws, stated once (test/unit/supervisor.property.test.ts checks them):
 *  0. Child specs are validated before anything starts (runtime/childSpec.ts):
 *     unique ids, known restart types, valid shutdowns.
 *  1. Children start in the order of their specs and stop in reverse order.
 *     Each stop follows the child's shutdown: a number of ms after which the
 *     child is killed and the stop goes on with the next one, `brutal_kill`
 *     (killed at once) or `infinity` (waited for; a supervisor's default).
 *     Killing a supervisor kills its children with it.
 *  1a. One copy at a time: a new incarnation of a child never starts before
 *     the previous one is gone (its stop settled or its kill returned), even
 *     when the stop outlived the shutdown. Two copies of a channel must never
 *     own the same serial port. So a supervisor's stop (or kill) resolves
 *     only once all its children are gone: a child that can neither stop nor
 *     be killed holds its supervisor, and that one's parent, up.
 *  2. Restart types: `permanent` children are always restarted; `transient`
 *     ones only after an abnormal exit (an error); `temporary` ones never, and
 *     are removed from the supervisor when they exit.
 *  3. Strategies: `one_for_one` restarts only the failed child; `one_for_all`
 *     stops every other child (reverse order) and restarts all in order;
 *     `rest_for_one` stops the children started after the failed one (reverse
 *     order) and restarts the failed one and those, in order.
 *  4. Intensity: every restart is counted, over all children. When a restart
 *     would make more than `intensity` restarts within the last `periodMs`
 *     (measured on the monotonic clock: a wall-clock jump changes nothing), the
 *     supervisor restarts nothing, stops all its children (law 1) and exits
 *     with an EscalationError naming the child; its parent then decides.
 *  5. Backoff: the restart of a child waits backoffDelay(policy, attempt); the
 *     child's attempt counter grows by one a restart and returns to 0 once the
 *     child has run `resetBackoffAfterMs` without failing.
 *  6. A child's own exit while the supervisor is stopping it is not a failure.
 *
 * Errors that have no caller (a throwing observer, a rejected stop) go to the
 * reporter (runtime/reporter.ts); none is swallowed.
 *
 * It never knows what a child is: a child is anything that can be started,
 * stopped and reports its exit (an XState actor adapter, another supervisor).
 */
import { backoffDelay, defaultBackoff, type BackoffPolicy } from './backoff.js';
import {
  shutdownOf,
  validateChildSpecs,
  type ChildSpec,
  type ChildType,
  type ExitReason,
  type RestartType,
  type RunningChild,
  type Shutdown,
} from './childSpec.js';
import { systemClock, type Clock, type TimerHandle } from './clock.js';
import { VoltageError, errorMessage } from './errors.js';
import { report, reportRejection, settled, type ReportContext } from './reporter.js';

export type { ChildSpec, ChildType, ExitReason, RestartType, RunningChild, Shutdown } from './childSpec.js';
export type Strategy = 'one_for_one' | 'one_for_all' | 'rest_for_one';

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
  | {
      readonly type: 'restart_scheduled';
      readonly supervisor: string;
      readonly child: string;
      readonly attempt: number;
      readonly delayMs: number;
      readonly restarts: number;
    }
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
  /** The start in flight: whoever bumps `generation` while it runs owns stopping what it returns. */
  starting: Promise<RunningChild> | undefined;
  /** The incarnation being stopped (a killer must reach it too). */
  stopping: RunningChild | undefined;
  /** Settles when the last stopped incarnation is gone (law 1a); never rejects. */
  gone: Promise<void> | undefined;
  /** Bumped at each start and stop, so that a late exit or start of an old incarnation is ignored. */
  generation: number;
  /** Monotonic. */
  startedAt: number;
  attempt: number;
  restarts: number;
  timer: TimerHandle | undefined;
  /** Wall clock, for display. */
  nextRestartAt: number | undefined;
}

export interface ChildInfo {
  readonly id: string;
  readonly type: ChildType;
  readonly status: ChildStatus;
  readonly restarts: number;
  readonly attempt: number;
  /** Wall-clock ms of the next restart while in backoff. */
  readonly nextRestartAt: number | undefined;
}

/** Runs `fn` (a child's stop or kill); a throw or rejection is reported, never lost, and never stops the caller. */
function invoke(fn: () => void | Promise<void>, context: ReportContext): Promise<void> {
  return settled(Promise.resolve().then(fn), context).then(() => undefined);
}

export class Supervisor implements RunningChild {
  readonly id: string;
  private readonly opts: SupervisorOptions;
  private readonly clock: Clock;
  private readonly backoff: BackoffPolicy;
  private readonly random: () => number;
  private readonly children: ChildState[] = [];
  /** Monotonic times of the restarts within the period. */
  private restartTimes: number[] = [];
  private stopping = false;
  /** The group change in progress (see `enqueue`). */
  private queue: Promise<void> = Promise.resolve();
  /** Stops that outlived their shutdown with nothing to kill: this supervisor is not gone before they are. */
  private readonly zombies = new Set<Promise<void>>();
  private exitListener: ((reason: ExitReason) => void) | undefined;

  /** Throws a ChildSpecError (code INVALID_CHILD_SPEC) naming every invalid spec. */
  constructor(opts: SupervisorOptions, specs: readonly ChildSpec[]) {
    this.id = opts.id;
    this.opts = opts;
    this.clock = opts.clock ?? systemClock;
    this.backoff = opts.backoff ?? defaultBackoff;
    this.random = opts.random ?? Math.random;
    validateChildSpecs(this.id, specs);
    for (const spec of specs) {
      this.children.push({
        spec,
        status: 'stopped',
        running: undefined,
        starting: undefined,
        stopping: undefined,
        gone: undefined,
        generation: 0,
        startedAt: 0,
        attempt: 0,
        restarts: 0,
        timer: undefined,
        nextRestartAt: undefined,
      });
    }
  }

  /** Starts the children in order. If one fails to start, the started ones are stopped and the error is thrown. */
  async start(): Promise<void> {
    for (const c of this.children) {
      try {
        await this.startChild(c);
      } catch (e) {
        await this.stopChildren(this.children);
        await this.allGone();
        throw e;
      }
    }
  }

  /** Stops every child in reverse order; resolves once all are gone. The supervisor does not report an exit for this. */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.stopChildren(this.children);
    await this.allGone();
  }

  /**
   * Forceful end, when a parent's shutdown for this supervisor ran out: every
   * child is killed with it (reverse order), those being stopped included.
   * Resolves once all of them are gone, so that the parent never starts a
   * second copy of the subtree beside the first.
   */
  async kill(): Promise<void> {
    this.stopping = true;
    for (const c of [...this.children].reverse()) {
      const context = { source: 'kill', supervisor: this.id, child: c.spec.id };
      const fresh = await this.takeRunning(c);
      const victims = [fresh, c.stopping].filter((v): v is RunningChild => v !== undefined);
      if (victims.length === 0 && !c.gone) continue;
      if (c.status !== 'exited') c.status = 'stopped';
      for (const v of victims) {
        if (v.kill) await invoke(() => v.kill?.(), context);
        else if (v === fresh) await invoke(() => v.stop(), context);
      }
      // Killed: gone now. Being stopped with nothing to kill: gone when its stop settles.
      if (c.stopping?.kill) {
        c.stopping = undefined;
        c.gone = undefined;
      }
      await c.gone;
      this.emit({ type: 'stopped', supervisor: this.id, child: c.spec.id, killed: true });
    }
    await this.allGone();
  }

  /** Every incarnation of every child gone: the stops in flight (another stopper's, or cut short by a shutdown) settled. */
  private async allGone(): Promise<void> {
    await Promise.all(this.children.map((c) => c.gone));
    while (this.zombies.size > 0) await Promise.all([...this.zombies]);
  }

  onExit(listener: (reason: ExitReason) => void): void {
    this.exitListener = listener;
  }

  info(): ChildInfo[] {
    return this.children.map((c) => ({
      id: c.spec.id,
      type: c.spec.type,
      status: c.status,
      restarts: c.restarts,
      attempt: c.attempt,
      nextRestartAt: c.nextRestartAt,
    }));
  }

  /**
   * A ChildSpec that runs a (new, on each restart) supervisor under another one.
   * Its shutdown is `infinity` unless given: its children stop in their own time.
   */
  static asChild(id: string, make: () => Supervisor, restart: RestartType = 'permanent', shutdown: Shutdown = 'infinity'): ChildSpec {
    return {
      id,
      restart,
      shutdown,
      type: 'supervisor',
      async start() {
        const sup = make();
        await sup.start();
        return sup;
      },
    };
  }

  private emit(event: SupervisorEvent): void {
    try {
      this.opts.onEvent?.(event);
    } catch (e) {
      // An observer must not break supervision, and its error must not be lost.
      report(e, { source: 'observer', supervisor: this.id, child: event.child, event: event.type });
    }
  }

  /** Starts one incarnation once the previous one is gone (law 1a). Throws what the child's start throws. */
  private async startChild(c: ChildState): Promise<void> {
    c.status = 'starting';
    c.timer = undefined;
    c.nextRestartAt = undefined;
    const generation = ++c.generation;
    if (c.gone) await c.gone;
    if (generation !== c.generation) return; // stopped while it waited
    const starting = c.spec.start();
    c.starting = starting;
    let running: RunningChild;
    try {
      running = await starting;
    } finally {
      if (c.starting === starting) c.starting = undefined;
    }
    if (generation !== c.generation) return; // a stop or kill took it over
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
      reportRejection(this.escalate(c, cause), { source: 'escalate', supervisor: this.id, child: c.spec.id });
      return;
    }
    if (now - c.startedAt >= this.backoff.resetBackoffAfterMs) c.attempt = 0;
    const delayMs = backoffDelay(this.backoff, c.attempt, this.random());
    c.attempt += 1;
    c.restarts += 1;
    this.emit({ type: 'restart_scheduled', supervisor: this.id, child: c.spec.id, attempt: c.attempt, delayMs, restarts: c.restarts });
    this.enqueue(c, () => this.restartLater(c, delayMs));
  }

  /**
   * Group changes (stop the group, later start it) run one at a time, as in
   * OTP's single supervisor process: a failure that arrives while another
   * group is being stopped or started is handled after it, on what is then
   * running, so that no child is started twice.
   */
  private enqueue(c: ChildState, work: () => Promise<void>): void {
    const next = this.queue.then(work);
    this.queue = next.then(undefined, (e: unknown) => report(e, { source: 'restart', supervisor: this.id, child: c.spec.id }));
  }

  /** Law 3: stop the rest of the group, then start the group after the backoff. */
  private async restartLater(c: ChildState, delayMs: number): Promise<void> {
    if (this.stopping) return;
    const group = this.groupOf(c);
    // A pending restart that shares a timer with this group is taken over, so that none is lost.
    const timers = new Set(group.map((g) => g.timer).filter((t) => t !== undefined));
    const takenOver = this.children.filter((g) => g.timer !== undefined && timers.has(g.timer));
    for (const g of [...group, ...takenOver]) {
      if (g.timer) this.clock.clearTimeout(g.timer);
      g.timer = undefined;
    }
    const siblings = group.filter((g) => g !== c && g.running);
    const restartSet = this.children.filter((g) => takenOver.includes(g) || (group.includes(g) && (g === c || g.running || g.status === 'backoff')));
    await this.stopChildren(siblings);
    if (this.stopping) return;
    for (const g of siblings) if (g.spec.restart === 'temporary') this.remove(g);
    const toStart = restartSet.filter((g) => this.children.includes(g));
    const restartAt = this.clock.wallNow() + delayMs;
    for (const g of toStart) {
      g.status = 'backoff';
      g.nextRestartAt = restartAt;
    }
    const timer = this.clock.setTimeout(() => this.enqueue(c, () => this.restartGroup(toStart)), delayMs);
    for (const g of toStart) g.timer = timer;
  }

  private async restartGroup(group: ChildState[]): Promise<void> {
    for (const g of group) {
      if (this.stopping || g.status !== 'backoff') continue;
      try {
        await this.startChild(g);
      } catch (e) {
        if (this.stopping || (g.status as ChildStatus) !== 'starting') {
          // startChild moved it on
          report(e, { source: 'start', supervisor: this.id, child: g.spec.id }); // failed while being stopped: no restart
          return;
        }
        g.status = 'exited';
        this.emit({ type: 'exited', supervisor: this.id, child: g.spec.id, reason: { kind: 'error', error: e } });
        this.failed(g, e);
        return;
      }
    }
  }

  private groupOf(c: ChildState): ChildState[] {
    switch (this.opts.strategy) {
      case 'one_for_one':
        return [c];
      case 'one_for_all':
        return [...this.children];
      case 'rest_for_one':
        return this.children.slice(this.children.indexOf(c));
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
    await this.allGone();
    this.emit({ type: 'escalated', supervisor: this.id, child: c.spec.id, error });
    this.exitListener?.({ kind: 'error', error });
  }

  /** Law 1: reverse order, each by its shutdown. */
  private async stopChildren(list: readonly ChildState[]): Promise<void> {
    for (const c of [...list].reverse()) await this.stopChild(c);
  }

  /**
   * Cancels a pending restart and any later one (a new generation), and takes the
   * running incarnation from the child: the one running, or the one a start in
   * flight brings (this stopper's to end; a failed start is its starter's to handle).
   */
  private async takeRunning(c: ChildState): Promise<RunningChild | undefined> {
    if (c.timer) this.clock.clearTimeout(c.timer);
    c.timer = undefined;
    c.nextRestartAt = undefined;
    c.generation += 1;
    const running =
      c.running ??
      (c.starting
        ? await c.starting.then(
            (r) => r,
            () => undefined,
          )
        : undefined);
    c.running = undefined;
    return running;
  }

  private async stopChild(c: ChildState): Promise<void> {
    const running = await this.takeRunning(c);
    if (!running) {
      if (c.status === 'backoff' || c.status === 'starting') {
        c.status = 'stopped';
        this.emit({ type: 'stopped', supervisor: this.id, child: c.spec.id, killed: false });
      }
      return;
    }
    c.status = 'stopped';
    const killed = await this.shutdown(c, running);
    this.emit({ type: 'stopped', supervisor: this.id, child: c.spec.id, killed });
  }

  /** Ends one incarnation by the child's shutdown; true if it was killed. `c.gone` settles once it is gone. */
  private async shutdown(c: ChildState, running: RunningChild): Promise<boolean> {
    const shutdown = shutdownOf(c.spec);
    const context = { source: 'stop', supervisor: this.id, child: c.spec.id };
    const kill = running.kill?.bind(running);
    if (shutdown === 'brutal_kill' && kill) {
      await invoke(kill, context);
      return true;
    }
    c.stopping = running;
    const stopped = invoke(() => running.stop(), context).then(() => {
      if (c.stopping === running) c.stopping = undefined;
    });
    c.gone = stopped;
    if (typeof shutdown !== 'number') {
      await stopped;
      return false;
    }
    let timer: TimerHandle | undefined;
    const timedOut = new Promise<true>((resolve) => {
      timer = this.clock.setTimeout(() => resolve(true), shutdown);
    });
    const killed = await Promise.race([stopped.then(() => false), timedOut]);
    if (timer) this.clock.clearTimeout(timer);
    if (killed && kill) {
      await invoke(kill, context);
      c.stopping = undefined;
      c.gone = undefined;
    }
    // Killed without a kill(): the stop goes on with the next child (law 1); the
    // next incarnation of this one still waits for `c.gone` (law 1a), and so
    // does the end of this supervisor (its parent must not start a second copy).
    if (killed && !kill) {
      this.zombies.add(stopped);
      void stopped.then(() => this.zombies.delete(stopped));
    }
    return killed;
  }
}
