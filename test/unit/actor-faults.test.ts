/**
 * An unhandled rejection or uncaught exception is never a silent crash: it is
 * logged with its err (code and context kept) and fails the actor it arose in,
 * which its supervisor restarts; outside any actor the process logs it and
 * exits non-zero. Runs test/helpers/faultyActor.ts in a process of its own.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SCRIPT = fileURLToPath(new URL('../helpers/faultyActor.ts', import.meta.url));

interface Line {
  level: number;
  msg: string;
  event?: string;
  child?: string;
  actor?: string;
  origin?: string;
  err?: { type: string; message: string; code?: string; context?: Record<string, string>; stack?: string };
}

function runScript(): Promise<{ code: number | null; lines: Line[]; stderr: string }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, ['--import', 'tsx', SCRIPT], {
      env: { ...process.env, LOG_FORMAT: 'json', LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let stderr = '';
    proc.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    proc.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`the fault process did not end within 20 s:\n${out}\n${stderr}`));
    }, 20_000);
    proc.on('exit', (code) => {
      clearTimeout(timer);
      resolve({
        code,
        stderr,
        lines: out
          .split('\n')
          .filter((l) => l.startsWith('{'))
          .map((l) => JSON.parse(l) as Line),
      });
    });
  });
}

describe('faults in the runtime process', () => {
  it('fail the actor they arose in (logged with err), and outside any actor end the process with exit 1', async () => {
    const { code, lines, stderr } = await runScript();
    const faults = lines.filter((l) => l.origin !== undefined);
    expect(faults.map((l) => [l.origin, l.actor, l.level])).toEqual([
      ['unhandled rejection', 'channel/7', 50],
      ['uncaught exception', 'channel/7', 50],
      ['unhandled rejection', undefined, 60],
    ]);
    // The err serializer keeps the VoltageError's type, code, context and stack.
    expect(faults[0]!.err).toMatchObject({
      type: 'VoltageError',
      message: 'the serial port vanished',
      code: 'PORT_GONE',
      context: { channel: '7', path: '/dev/ttyS7' },
    });
    expect(faults[0]!.err!.stack).toContain('faultyActor.ts');
    expect(faults[2]!.msg).toBe('unhandled rejection outside any actor: nobody owns this; the process exits');
    // Each fault inside the actor failed it: disposed, reported as exited, restarted.
    const story = lines.filter((l) => l.event !== undefined).map((l) => l.event);
    expect(story).toEqual(['started', 'disposed', 'exited', 'restart_scheduled', 'started', 'disposed', 'exited', 'restart_scheduled', 'started']);
    expect(lines.some((l) => l.msg === 'still alive')).toBe(false);
    expect(code).toBe(1);
    expect(stderr).toBe('');
  });
});
