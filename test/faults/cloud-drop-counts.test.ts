/**
 * Fault: the broker down until a link's backlog passes a tiny maxBacklogMB,
 * then back. What the link lost is counted exactly, and the one count is
 * told the same everywhere an operator looks: `/metrics`
 * (`voltage_cloud_dropped_total` / `voltage_cloud_not_taken_total`),
 * `voltage status` (`dropped` / `notTaken`) and the warning logs (the sum of
 * the counts they give), equal to `cloud:main:stats` — and to what is missing
 * at the subscriber (every poll is delivered or counted).
 */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../runtime/config/load.js';
import { statusReport } from '../../runtime/status.js';
import { checkOrder, COUNTER_SITE, type Received } from '../helpers/mqttWatch.js';
import { eventually, sleep, writeSite } from '../helpers/servers.js';
import { privateRedisSuite } from '../helpers/suite.js';
import { cloudYaml, killedBroker, linkBacklog } from './cloud.js';
import { api, capturedLog, startFaultRuntime } from './site.js';

const t = privateRedisSuite();

const CASES = [
  { overflow: 'drop-oldest', counter: 'dropped', metric: 'voltage_cloud_dropped_total', warning: 'the oldest unsent entries were dropped' },
  { overflow: 'refuse-new', counter: 'notTaken', metric: 'voltage_cloud_not_taken_total', warning: 'new entries are taken again' },
] as const;

/** The counter values delivered, each once (a duplicate dropped by its seq). */
function deliveredValues(got: readonly Received[]): number[] {
  const data = got.filter((m) => m.topic === 'voltage/site/data/inv');
  checkOrder(data.map((m) => m.body.seq as number));
  const seen = new Set<number>();
  return data.filter((m) => !seen.has(m.body.seq as number) && seen.add(m.body.seq as number)).map((m) => (m.body.values as { P: number }).P);
}

describe('fault: a cloud link past maxBacklogMB, the broker back', () => {
  for (const c of CASES) {
    it(`${c.overflow}: the exact count (${c.counter}) is the same in Redis, /metrics, voltage status and the warning logs, and is what the subscriber misses`, async () => {
      const { w, url, back } = await killedBroker(t, `counts-${c.overflow}`);
      const { log, lines } = capturedLog();
      // A poll every 40 ms, one entry each; the link may keep 2 kB (a few dozen entries).
      const site = loadConfig(
        writeSite({
          'site.yaml': `gateway:\n  port: 0\n${COUNTER_SITE}`,
          'cloud.yaml': cloudYaml(url, `      maxBacklogMB: 0.002\n      overflow: ${c.overflow}\n`),
        }),
      );
      const { rt, base } = await startFaultRuntime(t.server.url, site, log);
      t.running = rt;
      const stat = async () => Number((await t.raw.hget('cloud:main:stats', c.counter)) ?? 0);
      // Past the bound (refuse-new: a refused range open) for a while.
      await eventually(async () => (await stat()) > 0 || (await t.raw.get('cloud:main:refusing'))?.includes('from'), 8_000);
      await sleep(1_500);
      await back();
      // Drained, and (refuse-new) the refused range closed and counted, once the kept backlog is under the bound.
      await eventually(async () => {
        const g = await linkBacklog(t);
        return g !== undefined && g.lag + g.pending <= 3 && (await stat()) > 0;
      }, 10_000);
      // Nothing more is lost once drained: the count stays, and every place that tells it catches up with it.
      const count = await stat();
      const told = async () => {
        const metrics = (await api(base, 'GET', '/metrics')).body as string;
        const status = (await statusReport(t.bus)).text;
        return {
          metrics: Number(new RegExp(`^${c.metric}\\{link="main"\\} (\\d+)$`, 'm').exec(metrics)?.[1]),
          status: Number(new RegExp(`cloud/main .*\\b${c.counter} (\\d+)`).exec(status)?.[1]),
          logs: lines
            .filter((l) => l.level === 40 && l.msg.includes(c.warning))
            .reduce((n, l) => n + Number((l as unknown as Record<string, number>)[c.counter]), 0),
        };
      };
      await eventually(async () => {
        const x = await told();
        return x.metrics === count && x.status === count;
      }, 4_000).catch(() => undefined);
      expect(await told()).toEqual({ metrics: count, status: count, logs: count });
      expect(await stat()).toBe(count);
      // And the count is exact: every poll up to the last delivered was delivered or counted, none both.
      const n = deliveredValues(w.got).length;
      await eventually(() => deliveredValues(w.got).length > n + 5, 5_000); // new polls still flow after the loss
      await t.running.stop();
      t.running = undefined;
      const values = deliveredValues(w.got);
      expect(values).toEqual([...values].sort((a, b) => a - b));
      console.log(`${c.overflow}: ${c.counter} ${count}, delivered ${values.length}, last value ${values[values.length - 1]}`);
      expect(values[values.length - 1]! - values.length).toBe(count);
    }, 30_000);
  }
});
