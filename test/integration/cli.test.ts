/**
 * The `voltage` command as a user runs it: a real process, real signals, a
 * private redis-server.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:net';
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pidAlive, rawClient, spawnRedis, eventually, writeSite, type RedisServer } from '../helpers/servers.js';
import { freePort } from '../../runtime/redisServer.js';
import { spawnVoltage } from '../helpers/voltageCli.js';

const BIN = 'runtime/bin/voltage.js';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function voltage(args: string[], env: Record<string, string> = {}): { proc: ChildProcess; done: Promise<Run>; out: () => string } {
  const proc = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, LOG_FORMAT: 'json', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout!.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  proc.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const done = new Promise<Run>((resolve) => proc.on('exit', (code) => resolve({ code, stdout, stderr })));
  return { proc, done, out: () => stdout + stderr };
}

/**
 * The demos' temporary folder (TMPDIR): a demo removes what dead demos left in it (runtime/ownedProcess.ts
 * removeStaleTempDirs), and the tests' demos touch no folder but their own.
 */
let demoTmp: string;
beforeAll(() => {
  demoTmp = mkdtempSync(join(tmpdir(), 'voltage-cli-demos-'));
});
afterAll(() => {
  rmSync(demoTmp, { recursive: true, force: true });
});

/** `voltage demo` with its own redis-server (no REDIS_URL), once it says it runs. */
async function demo() {
  const { proc, exit, out } = spawnVoltage(['demo'], { ...process.env, REDIS_URL: undefined, TMPDIR: demoTmp, LOG_FORMAT: 'json' });
  const url = await eventually(() => /redis\s+(redis:\/\/127\.0\.0\.1:\d+) \(private redis-server, pid (\d+)/.exec(out()) ?? undefined, 20_000);
  expect(out()).toContain('VoltageEMS demo is running');
  return { proc, exit, url: url[1]!, redisPid: Number(url[2]), out };
}

/** The temporary directories a process made for its servers (runtime/ownedProcess.ts ownedTempDir), by name. */
function tempDirsOf(pid: number | undefined): string[] {
  return readdirSync(demoTmp).filter((n) => new RegExp(`^voltage-(redis|victoria)-${String(pid)}-`).test(n));
}

/** The pid of a demo's embedded victoria-metrics, as it printed it. */
const vmPid = (out: string) => Number(/history\s+http:\/\/127\.0\.0\.1:\d+ \(private victoria-metrics, pid (\d+)/.exec(out)?.[1]);

let server: RedisServer;
beforeAll(async () => {
  server = await spawnRedis();
});
afterAll(async () => {
  await server.stop();
});

describe('voltage CLI', () => {
  it('validate: OK on the example site, without Redis', async () => {
    const r = await voltage(['validate'], { REDIS_URL: 'redis://127.0.0.1:1' }).done;
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/OK — 6 channel\(s\) with \d+ point\(s\), 7 model\(s\)/);
  });

  it('validate: every problem with file:line:column, exit 2', async () => {
    const dir = writeSite({ 'site.yaml': 'channels:\n  - id: 1\n    protocol: virtual\n    polMs: 5\nmodels:\n  - id: m\n    mapping: { x: "1:m:1" }\n' });
    const r = await voltage(['validate', '--config', dir]).done;
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/site\.yaml:4:5: unknown key 'polMs' in channels\[0\]; did you mean 'pollMs'\?/);
    expect(r.stderr).toContain('1 problem(s)');
  });

  it('start: runs the site, SIGTERM stops the tree in reverse order and exits 0; status works while up and after', async () => {
    const env = { REDIS_URL: server.url };
    const run = voltage(['start', '--config', 'test/fixtures/flaky-site'], env);
    const c = rawClient(server);
    await eventually(async () => (await c.hget('actor:root', 'status')) === 'running', 15_000);
    const up = await voltage(['status'], env).done;
    expect(up.code).toBe(0);
    expect(up.stdout).toMatch(/^runtime: up \(pid \d+/);
    expect(up.stdout).toMatch(/├─ models\s+running/);
    expect(up.stdout).toMatch(/channel\/good1\s+running\s+state "polling"/);
    run.proc.kill('SIGTERM');
    const r = await run.done;
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('SIGTERM: stopping the tree');
    const down = await voltage(['status'], env).done;
    expect(down.stdout).toMatch(/^runtime: DOWN — last heartbeat/);
    expect(down.stdout).toMatch(/channel\/good1\s+stopped/);
    c.disconnect();
  });

  it('start: Ctrl-C while it waits for Redis stops its embedded VictoriaMetrics too, exit 0 (it was left running)', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'voltage-cli-history-'));
    const dir = writeSite({
      'site.yaml': `${readFileSync('test/fixtures/flaky-site/site.yaml', 'utf8')}\nhistory:\n  backends: [{ id: vm }]\n  dataDir: ${dataDir}\n`,
    });
    const victoriaOf = () => {
      try {
        return execFileSync('pgrep', ['-f', `storageDataPath=${dataDir}`], { encoding: 'utf8' }).trim();
      } catch {
        return ''; // pgrep exits 1 when nothing matches
      }
    };
    const run = voltage(['start', '--config', dir], { REDIS_URL: `redis://127.0.0.1:${await freePort()}` });
    await eventually(() => run.out().includes('unreachable') && victoriaOf() !== '', 20_000);
    run.proc.kill('SIGINT');
    expect((await run.done).code).toBe(0);
    await eventually(() => victoriaOf() === '', 10_000);
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('start: exits 1 with a line naming the child when the root gives up', async () => {
    const dir = writeSite({
      'site.yaml': `runtime:
  supervisor: { intensity: 0 }
  channels: { intensity: 0 }
channels:
  - id: bad
    protocol: virtual
    pollMs: 20
    fault: { crashAfterPolls: 1 }
    points: [ { type: m, id: 1, sim: { kind: constant, value: 1 } } ]
`,
    });
    const r = await voltage(['start', '--config', dir], { REDIS_URL: server.url }).done;
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("the supervisor tree gave up: supervisor 'root': child 'channels' exceeded the restart intensity of 0");
    expect(r.stdout).toContain("child 'channel/bad' exceeded the restart intensity of 0");
  });

  it('demo: starts a private redis-server, prints what it started, and removes it on SIGINT; two demos run side by side', async () => {
    const { Redis } = await import('ioredis');
    const first = await demo();
    const second = await demo(); // the first holds the configured Modbus port and serial path
    // Each made a temporary directory for its redis-server and one for its victoria-metrics, named after it.
    for (const d of [first, second])
      expect(tempDirsOf(d.proc.pid).sort()).toEqual([expect.stringMatching(/^voltage-redis-/), expect.stringMatching(/^voltage-victoria-/)]);
    const firstRedisDir = tempDirsOf(first.proc.pid).find((n) => n.startsWith('voltage-redis-'));
    for (const d of [first, second]) {
      const c = new Redis(d.url, { maxRetriesPerRequest: 1 });
      c.on('error', () => undefined);
      // Values from the simulated Modbus devices reach both sites' models.
      await eventually(
        async () =>
          (await c.hget('modsrv:site:measurement', 'load')) !== null &&
          (await c.hget('actor:channel/2001', 'status')) === 'running' &&
          (await c.hget('actor:channel/2002', 'status')) === 'running',
        15_000,
      );
      c.disconnect();
    }
    // The line printed to watch the cloud link names the demo's own embedded broker (each demo its own port), and
    // running it as printed receives the site's data.
    const watchLine = (out: string) => /^ {2}cloud {5}(mosquitto_sub -h 127\.0\.0\.1 -p (\d+) -t 'voltage\/#' -v)/m.exec(out) ?? undefined;
    const [line, brokerPort] = [watchLine(first.out())?.[1], watchLine(first.out())?.[2]];
    expect(line).toBeDefined();
    expect(watchLine(second.out())?.[2]).not.toBe(brokerPort);
    const watched = await new Promise<string>((res, rej) => execFile('sh', ['-c', `${line} -C 3 -W 10`], (err, stdout) => (err ? rej(err) : res(stdout))));
    expect(watched.trim().split('\n')).toHaveLength(3);
    expect(watched).toMatch(/^voltage\/\S+ \{.*"seq":\d+/m);
    const endpoint = (out: string) => /simulated Modbus channel 2001 \(modbus-tcp\) at (\S+)/.exec(out)?.[1];
    expect(endpoint(second.out())).toBeDefined();
    expect(endpoint(second.out())).not.toBe(endpoint(first.out()));
    // The demo owns its redis-server: killed, it is started again by its supervisor on the same port, and the site is restored in it.
    process.kill(first.redisPid, 'SIGKILL');
    await eventually(
      () => /redis-server this process started died/.test(first.out()) && /redis-server this process started is running again/.test(first.out()),
      10_000,
    );
    const again = new Redis(first.url, { maxRetriesPerRequest: 1 });
    again.on('error', () => undefined);
    await eventually(async () => (await again.get('site:config')) !== null && (await again.hget('modsrv:site:measurement', 'load')) !== null, 15_000);
    again.disconnect();
    // The dead one's directory went with it; its successor has one of its own.
    await eventually(() => tempDirsOf(first.proc.pid).length === 2 && !tempDirsOf(first.proc.pid).includes(firstRedisDir!), 5_000);
    // Its embedded victoria-metrics too: killed, it is started again on the same port and data directory.
    const vm = /history\s+(http:\/\/127\.0\.0\.1:\d+) \(private victoria-metrics, pid (\d+)/.exec(first.out());
    expect(vm).not.toBeNull();
    process.kill(Number(vm![2]), 'SIGKILL');
    await eventually(
      () => /victoria-metrics this process started died/.test(first.out()) && /victoria-metrics this process started is running again/.test(first.out()),
      15_000,
    );
    await eventually(
      async () =>
        (await fetch(`${vm![1]}/health`)
          .then((r) => r.ok)
          .catch(() => false)) === true,
      10_000,
    );
    const portOpen = (url: string) =>
      new Promise<boolean>((res) => {
        const sock = connect(Number(new URL(url).port), '127.0.0.1');
        sock.once('connect', () => {
          sock.destroy();
          res(true);
        });
        sock.once('error', () => res(false));
      });
    const firstVm =
      [...first.out().matchAll(/victoria-metrics this process started is running again on port \d+ \(pid (\d+)/g)].map((m) => Number(m[1])).at(-1) ??
      vmPid(first.out());
    // An impatient Ctrl-C: a second signal while it stops is said and waited out; its servers (the restarted redis-server too) stop with it.
    // (Signals sent back to back may reach it as one: each waits for what the last one did.)
    first.proc.kill('SIGINT');
    await eventually(() => first.out().includes('SIGINT: stopping the tree'), 5_000);
    first.proc.kill('SIGINT');
    expect(await first.exit).toBe(0);
    expect(first.out()).toMatch(/SIGINT: stopping already; once more to stop at once/);
    expect(await portOpen(first.url)).toBe(false);
    await eventually(() => !pidAlive(firstVm), 5_000);
    expect(tempDirsOf(first.proc.pid)).toEqual([]);
    // A third ends it at once (exit 130), and still leaves none of the servers it started running.
    const secondVm = vmPid(second.out());
    expect(pidAlive(secondVm)).toBe(true);
    second.proc.kill('SIGTERM');
    await eventually(() => second.out().includes('SIGTERM: stopping the tree'), 5_000);
    second.proc.kill('SIGTERM');
    await eventually(() => second.out().includes('SIGTERM: stopping already'), 5_000);
    expect(tempDirsOf(second.proc.pid)).toHaveLength(2);
    second.proc.kill('SIGTERM');
    expect(await second.exit).toBe(130);
    await eventually(async () => !(await portOpen(second.url)) && !pidAlive(secondVm), 5_000);
    // Removed by the exit hook itself, once the servers it killed were dead: nothing is left to wait for.
    expect(tempDirsOf(second.proc.pid)).toEqual([]);
  });

  it('demo killed with kill -9: the kernel stops its servers, and the next demo removes the directories it left', async () => {
    const killed = await demo();
    const left = tempDirsOf(killed.proc.pid);
    expect(left).toHaveLength(2);
    const servers = [killed.redisPid, vmPid(killed.out())];
    killed.proc.kill('SIGKILL');
    expect(await killed.exit).toBeNull();
    await eventually(() => servers.every((p) => !pidAlive(p)), 15_000); // setpriv --pdeathsig
    expect(tempDirsOf(killed.proc.pid)).toEqual(left); // an exit hook does not run on kill -9
    const next = await demo();
    expect(tempDirsOf(killed.proc.pid)).toEqual([]);
    expect(next.out()).toMatch(/removed \d+ temporary director(y|ies) left by a demo that was killed: .*voltage-(redis|victoria)-/);
    // Its own are not stale: its pid runs.
    expect(tempDirsOf(next.proc.pid)).toHaveLength(2);
    next.proc.kill('SIGINT');
    expect(await next.exit).toBe(0);
    expect(tempDirsOf(next.proc.pid)).toEqual([]);
  });

  it('start: stops the tree when the launcher that started it exits without forwarding a signal (npx on SIGTERM)', async () => {
    const env = { ...process.env, LOG_FORMAT: 'json', REDIS_URL: server.url };
    // A launcher that starts the runtime, reports its pid, and exits abruptly, as npx does on SIGTERM.
    const launcher = spawn(
      process.execPath,
      [
        '-e',
        `
      const { spawn } = require('node:child_process');
      const child = spawn(process.execPath, [${JSON.stringify(BIN)}, 'start', '--config', 'test/fixtures/flaky-site'], { stdio: 'ignore' });
      process.stdout.write(String(child.pid) + '\\n');
      process.stdin.on('data', () => process.exit(143));
    `,
      ],
      { env, stdio: ['pipe', 'pipe', 'inherit'] },
    );
    const pid = await new Promise<number>((res) => launcher.stdout!.once('data', (d: Buffer) => res(Number(d.toString().trim()))));
    const c = rawClient(server);
    await eventually(async () => (await c.hget('actor:root', 'status')) === 'running', 15_000);
    launcher.stdin!.write('exit\n');
    await eventually(async () => {
      try {
        process.kill(pid, 0);
        return false;
      } catch {
        return true;
      }
    }, 10_000);
    expect(await c.hget('actor:channel/good1', 'status')).toBe('stopped');
    c.disconnect();
  });

  it('control: sends a command, waits for its result, exits 0 when confirmed, 2 when rejected, 1 when nobody takes it', async () => {
    const env = { REDIS_URL: server.url };
    const dir = writeSite({
      'site.yaml': `channels:
  - id: v
    protocol: virtual
    pollMs: 50
    points: [ { type: a, id: 1, min: -10, max: 10 } ]
models:
  - id: m
    controls: { sp: {} }
    mapping: { sp: "v:a:1" }
`,
    });
    const run = voltage(['start', '--config', dir], env);
    const c = rawClient(server);
    await eventually(async () => (await c.hget('actor:channel/v', 'status')) === 'running', 15_000);
    const ok = await voltage(['control', 'm', 'sp', '7.5'], env).done;
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/cmd-\d+: confirmed — written and read back \(read back 7\.5\)/);
    const negative = await voltage(['control', 'm', 'sp', '-2.5'], env).done; // a value, not an option
    expect(negative.code).toBe(0);
    expect(negative.stdout).toMatch(/confirmed — written and read back \(read back -2\.5\)/);
    const rejected = await voltage(['control', 'm', 'sp', '70'], env).done;
    expect(rejected.code).toBe(2);
    expect(rejected.stderr).toContain('rejected: 70 is above the maximum 10 of m.sp');
    const noModel = await voltage(['control', 'nope', 'sp', '1'], env).done;
    expect(noModel.code).toBe(2);
    expect(noModel.stderr).toContain('rejected: no model nope\n');
    const noControl = await voltage(['control', 'm', 'nope', '1'], env).done;
    expect(noControl.stderr).toContain('rejected: model m has no control nope\n');
    run.proc.kill('SIGTERM');
    expect((await run.done).code).toBe(0);
    const unattended = await voltage(['control', 'm', 'sp', '1', '--timeout', '300'], env).done;
    expect(unattended.code).toBe(1);
    expect(unattended.stdout).toContain('still pending');
    c.disconnect();
  });

  it('schema: the whole JSON Schema through a shell pipe, more than the pipe holds (it used to stop at 64 kB)', async () => {
    // A pipe as a shell makes it (`voltage schema | jq`), not the socket pair spawn's 'pipe' is.
    const out = await new Promise<string>((resolve, reject) =>
      execFile('sh', ['-c', `"${process.execPath}" ${BIN} schema | cat`], { maxBuffer: 16 << 20 }, (e, stdout) => (e ? reject(e) : resolve(stdout))),
    );
    expect(out.length).toBeGreaterThan(65_536);
    expect(JSON.parse(out)).toEqual(JSON.parse(readFileSync('config/schema.json', 'utf8')));
  });

  it("plan: prints each Modbus channel's coalesced reads", async () => {
    const r = await voltage(['plan']).done;
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('channel 2001: 7 point(s) in 6 request(s) (max gap 10)');
    expect(r.stdout).toContain('unit 1 fn 3 address 0 count 4: m:1@+0 m:3@+2');
  });

  it('status --watch: redraws the tree with states, restarts and the backoff countdown every interval; SIGINT and SIGTERM end it with exit 0', async () => {
    const env = { REDIS_URL: server.url };
    const dir = writeSite({
      'site.yaml': `runtime:
  channels:
    intensity: 50
    backoff: { minBackoffMs: 3000, maxBackoffMs: 3000, randomFactor: 0, resetBackoffAfterMs: 60000 }
channels:
  - id: ok
    protocol: virtual
    pollMs: 50
    points: [ { type: m, id: 1, sim: { kind: constant, value: 1 } } ]
  - id: crashy
    protocol: virtual
    pollMs: 50
    fault: { crashAfterPolls: 1 }
    points: [ { type: m, id: 1, sim: { kind: constant, value: 1 } } ]
`,
    });
    const run = voltage(['start', '--config', dir], env);
    const c = rawClient(server);
    await eventually(async () => (await c.hget('actor:channel/crashy', 'status')) === 'backoff', 15_000);
    const header = /^voltage status --watch: \S+, every 300 ms; Ctrl-C stops$/gm;
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      const watch = voltage(['status', '--watch', '--interval', '300'], env);
      // Not a terminal: each frame is appended whole; five headers, four frames read whole at least.
      await eventually(() => (watch.out().match(header)?.length ?? 0) >= 5, 10_000);
      watch.proc.kill(signal);
      const r = await watch.done;
      expect(r.code).toBe(0);
      expect(r.stderr).toBe('');
      expect(r.stdout).not.toContain('\x1b['); // no terminal codes into a pipe
      const frames = r.stdout.split(header).slice(1);
      expect(frames.length).toBeGreaterThanOrEqual(4);
      for (const f of frames.slice(0, 2)) {
        expect(f).toMatch(/runtime: up \(pid \d+/);
        expect(f).toMatch(/channel\/ok\s+running\s+state "polling"\s+restarts 0/);
        expect(f).toMatch(/channel\/crashy\s+(running|backoff|failed)/);
      }
      // While it waits its 3 s backoff, the countdown goes down from frame to frame.
      const countdowns = frames.map((f) => {
        const m = /channel\/crashy\s+backoff.*restarts (\d+)\s+next start in ([\d.]+) (s|ms)/.exec(f);
        return m ? { restarts: Number(m[1]), leftMs: Number(m[2]) * (m[3] === 's' ? 1_000 : 1) } : undefined;
      });
      const pairs = countdowns
        .slice(1)
        .map((b, i) => [countdowns[i], b] as const)
        .filter(([a, b]) => a && b && a.restarts === b.restarts);
      expect(pairs.length).toBeGreaterThanOrEqual(1);
      for (const [a, b] of pairs) expect(b!.leftMs).toBeLessThan(a!.leftMs);
      expect(countdowns.find((x) => x)!.restarts).toBeGreaterThanOrEqual(1);
    }
    const bad = await voltage(['status', '--watch', '--interval', '5'], env).done;
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--interval 5: expected a whole number of milliseconds, at least 100');
    run.proc.kill('SIGTERM');
    expect((await run.done).code).toBe(0);
    c.disconnect();
  });

  it('status: says so and exits 2 when Redis does not answer within 5 s', async () => {
    const port = await freePort(); // nothing listens there
    const r = await voltage(['status'], { REDIS_URL: `redis://127.0.0.1:${port}` }).done;
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`voltage status: Redis at redis://127.0.0.1:${port} did not answer within 5 s`);
  });

  it('unknown command: usage and exit 2', async () => {
    const r = await voltage(['frobnicate']).done;
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("unknown command 'frobnicate'");
  });
});
