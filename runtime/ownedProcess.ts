/**
 * Processes this process starts and owns (the demo's redis-server, the embedded
 * VictoriaMetrics, socat for a simulated serial line, the tests' servers): they
 * must not outlive it, however it ends.
 *
 * - When Node runs its exit hook (a normal exit, process.exit, a third signal
 *   while stopping), the hook kills those not yet stopped.
 * - When it cannot (kill -9, a crash of Node itself, the OOM killer), the
 *   kernel does: each is started through util-linux's `setpriv --pdeathsig
 *   TERM` (Debian's util-linux is essential, so it is there), which asks the
 *   kernel to send it SIGTERM when its parent dies and then execs it, same pid.
 *   An orphaned embedded VictoriaMetrics kept its port and its data directory's
 *   lock, so the next `voltage start` could not start one on it.
 *   (The signal follows the thread that spawned: here always the main thread of
 *   the process, or of a test's forked worker.)
 *
 * The temporary directories made for those servers (the demo's redis-server's, a
 * temporary VictoriaMetrics data directory) go with them: removed when the server
 * is stopped, and by the exit hook once the servers it killed are dead. Each is
 * named after the process that made it (`voltage-redis-<pid>-…` in the temporary
 * folder) and holds a marker with its pid namespace and pid (a container that
 * shares /tmp has pids of its own), so that those left behind by a process killed with kill -9 (whose
 * servers the kernel stops, but whose directories stay) can be told apart and
 * removed later (removeStaleTempDirs), once nothing uses them.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { accessSync, constants, mkdtempSync, readdirSync, readFileSync, readlinkSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

/** The executable `bin` resolves to on PATH, or undefined. */
export function whichOnPath(bin: string): string | undefined {
  if (bin.includes('/')) return bin;
  for (const d of (process.env.PATH ?? '').split(delimiter)) {
    if (!d) continue;
    const p = join(d, bin);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // Not in this folder.
    }
  }
  return undefined;
}

/** Whether `bin` is an executable on PATH. */
export function onPath(bin: string): boolean {
  return whichOnPath(bin) !== undefined;
}

/** Processes started and not yet exited: killed when this process exits, however it exits. */
const running = new Set<ChildProcess>();
/** Temporary directories made for them and not yet removed: removed when this process exits. */
const tempDirs = new Set<string>();
let exitHook = false;

function installExitHook(): void {
  if (exitHook) return;
  exitHook = true;
  process.once('exit', () => {
    const killed = [...running].filter((c) => c.kill('SIGKILL')).map((c) => c.pid);
    if (tempDirs.size === 0) return;
    // Only once they are dead: a VictoriaMetrics still flushing into a directory being removed could leave
    // files in it (rmSync's ENOTEMPTY) or write into a recreated path. SIGKILL ends it at its next return
    // to user space, within a few ms: waited for here, synchronously (an exit hook runs no more I/O),
    // until each is a zombie (dead, not yet reaped: Node reaps no child here) or gone, at most 2 s.
    waitDead(
      killed.filter((p): p is number => p !== undefined),
      2_000,
    );
    for (const dir of tempDirs) removeDir(dir);
  });
}

export function killOnExit(child: ChildProcess): void {
  running.add(child);
  child.once('exit', () => running.delete(child));
  installExitHook();
}

/** Whether `pid` is running (a zombie is not): from /proc, so Linux only (elsewhere always false). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.charAt(stat.lastIndexOf(')') + 2);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

function waitDead(pids: readonly number[], withinMs: number): void {
  const pause = new Int32Array(new SharedArrayBuffer(4));
  const deadline = Date.now() + withinMs;
  while (pids.some(alive) && Date.now() < deadline) Atomics.wait(pause, 0, 0, 5);
}

function removeDir(dir: string): void {
  try {
    rmSync(dir, { recursive: true, force: true, maxRetries: 2 });
  } catch {
    // Left for removeStaleTempDirs: the owner's pid in its name is dead from now on.
  }
  tempDirs.delete(dir);
}

/** A temporary directory of this process's own (see the header): `voltage-<kind>-<pid>-XXXXXX`. */
export interface OwnedTempDir {
  readonly path: string;
  /** Removes it (again: a no-op). */
  remove(): void;
}

export function ownedTempDir(kind: 'redis' | 'victoria'): OwnedTempDir {
  const path = mkdtempSync(join(tmpdir(), `voltage-${kind}-${process.pid}-`));
  writeFileSync(join(path, OWNER_MARKER), ownerMarker(process.pid));
  tempDirs.add(path);
  installExitHook();
  return { path, remove: () => removeDir(path) };
}

const OWNED_TEMP = /^voltage-(?:redis|victoria)-(\d+)-[A-Za-z0-9]{6}$/;

/** The file in an owned temporary directory that names its maker: its pid namespace and pid. */
export const OWNER_MARKER = '.voltage-owner';

/** This process's pid namespace (`pid:[4026531836]`), '' where there is no /proc. */
export function pidNamespace(): string {
  try {
    return readlinkSync('/proc/self/ns/pid');
  } catch {
    return '';
  }
}

/** The marker's text: the maker's pid namespace and its pid (a pid means something only in its namespace). */
export function ownerMarker(pid: number, namespace: string = pidNamespace()): string {
  return `${namespace} ${pid}\n`;
}

/** Whether the marker in `dir` names a maker in this pid namespace that no longer runs (no marker, another namespace: false). */
function makerGone(dir: string): boolean {
  let text: string;
  try {
    text = readFileSync(join(dir, OWNER_MARKER), 'utf8');
  } catch {
    return false;
  }
  const m = /^(\S+) (\d+)\n?$/.exec(text);
  const ns = pidNamespace();
  return m !== null && ns !== '' && m[1] === ns && Number(m[2]) !== process.pid && !pidExists(Number(m[2]));
}

/** Whether a process could have it open: `pid` answers signal 0 (EPERM: it exists, another user's). */
function pidExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Whether any process we can see has its working directory or an open file in `dir` (Linux's /proc). */
function inUse(given: string): boolean {
  const dir = realpathSync(given);
  const under = (p: string) => p === dir || p.startsWith(`${dir}/`);
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      if (under(readlinkSync(`/proc/${pid}/cwd`))) return true;
      for (const fd of readdirSync(`/proc/${pid}/fd`)) if (under(readlinkSync(`/proc/${pid}/fd/${fd}`))) return true;
    } catch {
      // Gone, or not ours to read: a process of another user cannot hold our directory's files but through
      // a directory we made 0700 (mkdtemp), which it cannot enter.
    }
  }
  return false;
}

/**
 * Removes the temporary directories that processes of this user made for their servers and left behind
 * (killed with kill -9), provably: named after their maker (`voltage-redis-<pid>-…`), its marker
 * (OWNER_MARKER) naming this pid namespace and a pid that no longer runs in it, and nothing working in them
 * or holding a file open there (their servers, stopped by the kernel
 * when their maker died, may still be flushing). Only in the temporary folder (`folder`: a test's own), never
 * a given directory. Returns those removed.
 */
export function removeStaleTempDirs(folder: string = tmpdir()): string[] {
  if (process.platform !== 'linux') return [];
  const uid = process.getuid?.();
  const removed: string[] = [];
  for (const name of readdirSync(folder)) {
    const owner = OWNED_TEMP.exec(name)?.[1];
    if (owner === undefined || Number(owner) === process.pid || pidExists(Number(owner))) continue;
    const dir = join(folder, name);
    try {
      const st = statSync(dir);
      // A container sharing this /tmp may have a live maker whose pid is not visible here: only a directory whose
      // marker names this pid namespace is judged (one without a marker, or from another namespace, is left).
      if (!st.isDirectory() || st.uid !== uid || !makerGone(dir) || inUse(dir)) continue;
      rmSync(dir, { recursive: true, force: true });
      removed.push(dir);
    } catch {
      // Removed meanwhile, or not ours to remove: left alone.
    }
  }
  return removed;
}

const SETPRIV = whichOnPath('setpriv');

/**
 * Spawns `bin` as a process this one owns (see the header). A `bin` not on PATH is spawned as given, so that
 * its 'error' event says ENOENT as before, rather than setpriv's exit code.
 */
export function spawnOwned(bin: string, args: readonly string[], options: SpawnOptions): ChildProcess {
  const child =
    SETPRIV && whichOnPath(bin) !== undefined ? spawn(SETPRIV, ['--pdeathsig', 'TERM', '--', bin, ...args], options) : spawn(bin, [...args], options);
  killOnExit(child);
  return child;
}
