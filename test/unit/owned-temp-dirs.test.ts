import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { spawnRedis } from '../../runtime/redisServer.js';
import { OWNER_MARKER, ownedTempDir, ownerMarker, pidNamespace, removeStaleTempDirs } from '../../runtime/ownedProcess.js';

const folders: string[] = [];
afterEach(() => {
  for (const f of folders.splice(0)) rmSync(f, { recursive: true, force: true });
});

describe("the servers' temporary directories (a demo killed with kill -9 leaves them)", () => {
  it('are named after the process that made them, and removed by it', () => {
    const dir = ownedTempDir('redis');
    expect(basename(dir.path)).toMatch(new RegExp(`^voltage-redis-${process.pid}-[A-Za-z0-9]{6}$`));
    expect(existsSync(dir.path)).toBe(true);
    // Marked with its maker's pid namespace and pid.
    expect(pidNamespace()).toMatch(/^pid:\[\d+\]$/);
    expect(readFileSync(join(dir.path, OWNER_MARKER), 'utf8')).toBe(`${pidNamespace()} ${process.pid}\n`);
    dir.remove();
    expect(existsSync(dir.path)).toBe(false);
    dir.remove(); // again: nothing
  });

  it('a stale one is removed only when its marker names this pid namespace and a maker that no longer runs, and nothing works or holds a file in it', async () => {
    const folder = mkdtempSync(join(tmpdir(), 'voltage-stale-test-'));
    folders.push(folder);
    const dead = spawnSync('true').pid!; // ran and was reaped
    const sleeper = spawn('sleep', ['30'], { stdio: 'ignore' });
    const at = (name: string) => join(folder, name);
    /** A directory as ownedTempDir makes it: its marker names `pid` in `ns` (this namespace unless given); none when `ns` is null. */
    const made = (name: string, pid: number, ns: string | null = pidNamespace()) => {
      mkdirSync(at(name));
      if (ns !== null) writeFileSync(join(at(name), OWNER_MARKER), ownerMarker(pid, ns));
    };
    made(`voltage-redis-${dead}-aaaaaa`, dead);
    writeFileSync(at(`voltage-redis-${dead}-aaaaaa/dump`), 'x');
    made(`voltage-victoria-${dead}-bbbbbb`, dead);
    made(`voltage-redis-${sleeper.pid}-cccccc`, sleeper.pid!); // its maker runs
    writeFileSync(at(`voltage-redis-${dead}-dddddd`), 'a file, not a directory');
    made(`other-${dead}-eeeeee`, dead); // not named by us
    made(`voltage-redis-${process.pid}-ffffff`, process.pid); // this process's own
    // Made in another container sharing /tmp: its maker's pid is not visible here, it may well run.
    made(`voltage-redis-${dead}-gggggg`, dead, 'pid:[1]');
    made(`voltage-redis-${dead}-hhhhhh`, dead, null); // no marker: not provably ours to judge
    // A server still shutting down in it (its working directory).
    const user = spawn('sleep', ['30'], { cwd: at(`voltage-victoria-${dead}-bbbbbb`), stdio: 'ignore' });
    await new Promise((r) => user.once('spawn', r));
    try {
      expect(removeStaleTempDirs(folder)).toEqual([at(`voltage-redis-${dead}-aaaaaa`)]);
      user.kill('SIGKILL');
      await new Promise((r) => user.once('exit', r));
      expect(removeStaleTempDirs(folder)).toEqual([at(`voltage-victoria-${dead}-bbbbbb`)]);
      for (const kept of [
        `voltage-redis-${sleeper.pid}-cccccc`,
        `voltage-redis-${dead}-dddddd`,
        `other-${dead}-eeeeee`,
        `voltage-redis-${process.pid}-ffffff`,
        `voltage-redis-${dead}-gggggg`,
        `voltage-redis-${dead}-hhhhhh`,
      ]) {
        expect(existsSync(at(kept))).toBe(true);
      }
    } finally {
      user.kill('SIGKILL');
      sleeper.kill('SIGKILL');
    }
  });

  it('a redis-server that never accepts a connection: killed, and refused only once it has exited, its directory removed', async () => {
    const folder = mkdtempSync(join(tmpdir(), 'voltage-mute-test-'));
    folders.push(folder);
    const pidFile = join(folder, 'pid');
    const bin = join(folder, 'mute-redis');
    writeFileSync(bin, `#!/bin/sh\necho $$ > '${pidFile}'\nexec sleep 30\n`);
    chmodSync(bin, 0o755);
    const mine = () => readdirSync(tmpdir()).filter((n) => n.startsWith(`voltage-redis-${process.pid}-`));
    const before = mine();
    await expect(spawnRedis({ bin })).rejects.toThrow(/did not accept connections within 5 s/);
    const pid = Number(readFileSync(pidFile, 'utf8'));
    expect(() => process.kill(pid, 0)).toThrow(); // not running (ESRCH): it was killed before the refusal
    expect(mine()).toEqual(before);
  }, 15_000);
});
