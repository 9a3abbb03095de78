/** `voltage <args>` run as a user runs it: a real process, its stdout and stderr kept together. */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';

export const BIN = 'runtime/bin/voltage.js';

export interface VoltageProcess {
  readonly proc: ChildProcessWithoutNullStreams;
  /** Its exit code (null when a signal ended it). */
  readonly exit: Promise<number | null>;
  /** All it wrote so far. */
  out(): string;
}

/** `env` is the whole environment (a variable left undefined is not passed). */
export function spawnVoltage(args: readonly string[], env: Readonly<Record<string, string | undefined>>): VoltageProcess {
  const clean: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined) clean[k] = v;
  const proc = spawn(process.execPath, [BIN, ...args], { env: clean, stdio: ['pipe', 'pipe', 'pipe'] });
  proc.stdin.end();
  let out = '';
  proc.stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  proc.stderr.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const exit = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
  return { proc, exit, out: () => out };
}
