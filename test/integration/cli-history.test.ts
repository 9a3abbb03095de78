/**
 * History as a user of the `voltage` command meets it: the demo starts a
 * private VictoriaMetrics beside its private Redis, and its history answers
 * GET /api/v1/history with numbers; `start` refuses an InfluxDB backend
 * whose token variable is not set, before starting anything.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { onPath } from '../../runtime/ownedProcess.js';
import { childPids, eventually, pidAlive, writeSite } from '../helpers/servers.js';
import { spawnVoltage } from '../helpers/voltageCli.js';

const HAVE_VICTORIA = onPath('victoria-metrics');

function voltage(args: string[], env: Record<string, string | undefined>) {
  return spawnVoltage(args, { ...process.env, LOG_FORMAT: 'json', ...env });
}

describe('voltage CLI: history', () => {
  it.skipIf(!HAVE_VICTORIA)(
    `demo: keeps history in a private VictoriaMetrics that GET /api/v1/history answers from, and stops it on SIGINT${HAVE_VICTORIA ? '' : ' (skipped: victoria-metrics is not on PATH; apt-get install victoria-metrics)'}`,
    async () => {
      const demo = voltage(['demo'], { REDIS_URL: undefined });
      try {
        const m = await eventually(
          () => {
            const out = demo.out();
            const api = /api\s+(http:\/\/\S+)\/health/.exec(out)?.[1];
            const token = /token\s+viewer\s+(\S+)/.exec(out)?.[1];
            const vm = /history\s+(http:\/\/127\.0\.0\.1:\d+) \(private victoria-metrics, pid (\d+)/.exec(out);
            return api && token && vm ? { api, token, vmUrl: vm[1]!, vmPid: Number(vm[2]) } : undefined;
          },
          30_000,
          100,
        );
        expect(demo.out()).toContain(`grafana   a Prometheus data source with URL ${m.vmUrl}`);
        const values = await eventually(
          async () => {
            const r = await fetch(`${m.api}/api/v1/history?series=model/site/load,model/pv1/P&from=-1m&step=1s&agg=last`, {
              headers: { authorization: `Bearer ${m.token}` },
            });
            if (r.status !== 200) return undefined;
            const body = (await r.json()) as { series: Array<{ id: string; values: Array<number | null> }> };
            const numbers = body.series.map((s) => s.values.filter((v): v is number => typeof v === 'number'));
            return numbers.every((n) => n.length >= 2) ? numbers : undefined;
          },
          30_000,
          500,
        );
        for (const n of values) expect(n.every(Number.isFinite)).toBe(true);
        demo.proc.kill('SIGINT');
        expect(await demo.exit).toBe(0);
        expect(() => process.kill(m.vmPid, 0)).toThrow();
      } finally {
        if (demo.proc.exitCode === null) demo.proc.kill('SIGKILL');
      }
    },
    60_000,
  );

  it.skipIf(!HAVE_VICTORIA)(
    `demo killed with kill -9: the servers it started (redis-server, VictoriaMetrics, socat) and its gateway's process stop with it${HAVE_VICTORIA ? '' : ' (skipped: victoria-metrics is not on PATH)'}`,
    async () => {
      // Its own temporary folder: a demo killed so leaves its servers' directories (the next demo removes them).
      const tmp = mkdtempSync(join(tmpdir(), 'voltage-cli-history-'));
      const demo = voltage(['demo'], { REDIS_URL: undefined, TMPDIR: tmp });
      let children: number[] = [];
      try {
        await eventually(
          () => /history\s+http:\/\/127\.0\.0\.1:\d+ \(private victoria-metrics, pid \d+/.test(demo.out()) && /the gateway serves on port/.test(demo.out()),
          30_000,
          100,
        );
        children = childPids(demo.proc.pid!);
        const names = children.map((pid) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').split(/[\0 ]/)[0]!.split('/').at(-1));
        // Each is itself (setpriv execs it, same pid), not a wrapper left between (redis-server retitles itself: its first word).
        expect(names).toEqual(expect.arrayContaining(['redis-server', 'victoria-metrics', 'socat']));
        demo.proc.kill('SIGKILL');
        await demo.exit;
        // The kernel's parent-death signal (SIGTERM): VictoriaMetrics flushes and exits; nothing is left holding a port or a lock.
        await eventually(() => children.every((pid) => !pidAlive(pid)), 10_000, 100);
      } finally {
        if (demo.proc.exitCode === null) demo.proc.kill('SIGKILL');
        // Had they outlived it (the failure this tests), they go now: a test leaves nothing running.
        for (const pid of children) if (pidAlive(pid)) process.kill(pid, 'SIGKILL');
        await eventually(() => children.every((pid) => !pidAlive(pid)), 5_000, 100);
        rmSync(tmp, { recursive: true, force: true });
      }
    },
    60_000,
  );

  it('start: an InfluxDB backend whose token variable is not set is refused before anything starts, exit 2', async () => {
    const dir = writeSite({
      'site.yaml': `channels:
  - { id: 1, protocol: virtual, points: [ { type: m, id: 1, sim: { kind: constant, value: 1 } } ] }
history:
  backends:
    - { id: influx, kind: influxdb, url: "http://127.0.0.1:1", org: o, bucket: b, tokenEnv: VOLTAGE_TEST_NO_SUCH_TOKEN }
`,
    });
    const run = voltage(['start', '--config', dir], { REDIS_URL: 'redis://127.0.0.1:1', VOLTAGE_TEST_NO_SUCH_TOKEN: undefined });
    expect(await run.exit).toBe(2);
    expect(run.out()).toContain(
      "history backend 'influx': the environment variable VOLTAGE_TEST_NO_SUCH_TOKEN (history.backends[].tokenEnv) that should hold its token is not set",
    );
    expect(run.out()).toContain('nothing was started');
  });
});
