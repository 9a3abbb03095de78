import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ownedTempDir, removeStaleTempDirs } from '../../runtime/ownedProcess.js';

const folders: string[] = [];
afterEach(() => {
  for (const f of folders.splice(0)) rmSync(f, { recursive: true, force: true });
});

describe("the servers' temporary directories (a demo killed with kill -9 leaves them)", () => {
  it('are named after the process that made them, and removed by it', () => {
    const dir = ownedTempDir('redis');
    expect(basename(dir.path)).toMatch(new RegExp(`^voltage-redis-${process.pid}-[A-Za-z0-9]{6}$`));
    expect(existsSync(dir.path)).toBe(true);
    dir.remove();
    expect(existsSync(dir.path)).toBe(false);
    dir.remove(); // again: nothing
  });

  it("a stale one is removed only when its maker's pid no longer runs and nothing works or holds a file in it", async () => {
    const folder = mkdtempSync(join(tmpdir(), 'voltage-stale-test-'));
    folders.push(folder);
    const dead = spawnSync('true').pid!; // ran and was reaped
    const sleeper = spawn('sleep', ['30'], { stdio: 'ignore' });
    const at = (name: string) => join(folder, name);
    mkdirSync(at(`voltage-redis-${dead}-aaaaaa`));
    writeFileSync(at(`voltage-redis-${dead}-aaaaaa/dump`), 'x');
    mkdirSync(at(`voltage-victoria-${dead}-bbbbbb`));
    mkdirSync(at(`voltage-redis-${sleeper.pid}-cccccc`)); // its maker runs
    writeFileSync(at(`voltage-redis-${dead}-dddddd`), 'a file, not a directory');
    mkdirSync(at(`other-${dead}-eeeeee`)); // not named by us
    mkdirSync(at(`voltage-redis-${process.pid}-ffffff`)); // this process's own
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
      ]) {
        expect(existsSync(at(kept))).toBe(true);
      }
    } finally {
      user.kill('SIGKILL');
      sleeper.kill('SIGKILL');
    }
  });
});
