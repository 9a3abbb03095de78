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
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
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
let exitHook = false;
export function killOnExit(child: ChildProcess): void {
  running.add(child);
  child.once('exit', () => running.delete(child));
  if (exitHook) return;
  exitHook = true;
  process.once('exit', () => {
    for (const c of running) c.kill('SIGKILL');
  });
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
