/**
 * Child specs as plain data, and their validation (OTP's
 * supervisor:check_childspecs). A supervisor refuses specs it cannot keep its
 * promises for, before it starts anything, with one error that lists every
 * problem.
 *
 * Shutdown, as in OTP: a positive whole number of milliseconds that `stop()`
 * may take before the child is killed, `'brutal_kill'` (killed at once), or
 * `'infinity'` (waited for as long as it takes). A child that is a supervisor
 * defaults to `'infinity'`, so that its own children stop in their own time
 * and no copy of them is left running while it is restarted; a worker defaults
 * to 5 s.
 */
import { VoltageError } from './errors.js';

export type RestartType = 'permanent' | 'transient' | 'temporary';
export type ChildType = 'worker' | 'supervisor';
export type Shutdown = number | 'brutal_kill' | 'infinity';

export const DEFAULT_WORKER_SHUTDOWN_MS = 5_000;

export type ExitReason = { readonly kind: 'normal' } | { readonly kind: 'error'; readonly error: unknown };

/**
 * A started child. `onExit` fires at most once, for exits the supervisor did
 * not ask for. An incarnation is gone when its `stop()` has settled or its
 * `kill()` has returned: only then may a new incarnation of the same child
 * start (it may hold a serial port or a socket that the next one needs).
 */
export interface RunningChild {
  stop(): Promise<void>;
  /** Forceful end, when `stop()` outlives the shutdown or the shutdown is `'brutal_kill'`. Resolves once nothing is held. */
  kill?(): void | Promise<void>;
  onExit(listener: (reason: ExitReason) => void): void;
}

export interface ChildSpec {
  readonly id: string;
  readonly restart: RestartType;
  /** Default: `'infinity'` for a supervisor, DEFAULT_WORKER_SHUTDOWN_MS for a worker. */
  readonly shutdown?: Shutdown;
  readonly type: ChildType;
  start(): Promise<RunningChild>;
}

export class ChildSpecError extends VoltageError {
  readonly problems: readonly string[];
  constructor(supervisor: string, problems: readonly string[]) {
    super('runtime', 'INVALID_CHILD_SPEC', `supervisor '${supervisor}': invalid child spec(s):\n${problems.map((p) => `  - ${p}`).join('\n')}`, { supervisor });
    this.name = 'ChildSpecError';
    this.problems = problems;
  }
}

export function shutdownOf(spec: ChildSpec): Shutdown {
  return spec.shutdown ?? (spec.type === 'supervisor' ? 'infinity' : DEFAULT_WORKER_SHUTDOWN_MS);
}

const RESTARTS: readonly unknown[] = ['permanent', 'transient', 'temporary'];
const TYPES: readonly unknown[] = ['worker', 'supervisor'];

function shutdownProblem(shutdown: unknown): string | undefined {
  if (shutdown === undefined || shutdown === 'brutal_kill' || shutdown === 'infinity') return undefined;
  if (typeof shutdown === 'number' && Number.isSafeInteger(shutdown) && shutdown > 0) return undefined;
  return `shutdown ${JSON.stringify(shutdown) ?? String(shutdown)} is not a positive whole number of milliseconds, 'brutal_kill' or 'infinity'`;
}

/** Every problem of a list of specs, named by child; empty when they are valid. */
export function childSpecProblems(specs: readonly ChildSpec[]): string[] {
  const problems: string[] = [];
  const seen = new Set<string>();
  specs.forEach((spec, i) => {
    const name = typeof spec.id === 'string' && spec.id !== '' ? `child '${spec.id}'` : `child #${i + 1}`;
    if (typeof spec.id !== 'string' || spec.id === '') problems.push(`${name}: the id must be a non-empty string`);
    else if (seen.has(spec.id)) problems.push(`${name}: duplicate id (ids are unique within a supervisor)`);
    else seen.add(spec.id);
    if (!RESTARTS.includes(spec.restart)) problems.push(`${name}: restart ${JSON.stringify(spec.restart)} is not 'permanent', 'transient' or 'temporary'`);
    if (!TYPES.includes(spec.type)) problems.push(`${name}: type ${JSON.stringify(spec.type)} is not 'worker' or 'supervisor'`);
    const shutdown = shutdownProblem(spec.shutdown);
    if (shutdown) problems.push(`${name}: ${shutdown}`);
    if (typeof spec.start !== 'function') problems.push(`${name}: start is not a function`);
  });
  return problems;
}

/** Throws a ChildSpecError naming every problem of the specs of `supervisor`. */
export function validateChildSpecs(supervisor: string, specs: readonly ChildSpec[]): void {
  const problems = childSpecProblems(specs);
  if (problems.length > 0) throw new ChildSpecError(supervisor, problems);
}
