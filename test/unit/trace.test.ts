/**
 * runtime/trace.ts, the hot-path timeline for a benchmark's diagnosis: off unless
 * VOLTAGE_TRACE names a file; on, a process writes its events, the 2 ms timer's
 * rows and the clock pair there when it exits. Run in a child process each, as
 * the switch is read once, when the module loads.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { headTs } from '../../runtime/trace.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SCRIPT = `
const t = await import('./runtime/trace.ts');
t.trace(t.TRACE_KINDS.note, t.traceNow(), 123, t.traceName('modsrv:m1:update'));
await new Promise((r) => setTimeout(r, 30));
console.log(t.tracing);
`;

function run(env: Record<string, string>): string {
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', SCRIPT], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    timeout: 20_000,
    encoding: 'utf8',
  });
  expect(r.status, r.stderr).toBe(0);
  return r.stdout.trim();
}

describe('the runtime trace', () => {
  it('reads the ts at the head of a notification without parsing it', () => {
    expect(headTs('{"ts":1796692743578,"src":"c2m","v":{"p1":1}}')).toBe(1796692743578);
    expect(headTs('{"src":"c2m","ts":1}')).toBe(0);
    expect(headTs('')).toBe(0);
  });

  it('is off when VOLTAGE_TRACE is empty', () => {
    expect(run({ VOLTAGE_TRACE: '' })).toBe('false');
  });

  it('on, writes the events, the timer rows and the clock pair when the process exits', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'voltage-trace-')), 'trace.json');
    expect(run({ VOLTAGE_TRACE: file })).toBe('true');
    const out = JSON.parse(readFileSync(file, 'utf8')) as {
      names: string[];
      rows: number[][];
      clock: { hrUs: number; at: number };
      kinds: Record<string, number>;
    };
    expect(out.names).toEqual(['modsrv:m1:update']);
    expect(out.rows.find((r) => r[0] === out.kinds.note)).toEqual([out.kinds.note, expect.any(Number), 123, 0]);
    const ticks = out.rows.filter((r) => r[0] === out.kinds.tick);
    expect(ticks.length).toBeGreaterThan(3);
    expect(Math.abs(ticks[0]![1]! - Date.now())).toBeLessThan(60_000);
    expect(out.clock.hrUs).toBeGreaterThan(0);
  });
});
