/**
 * Fault: a slow WebSocket client — it subscribes to a busy topic (~100 kB a
 * delta, 20 a second) and then stops reading (its socket paused) while the
 * site goes on publishing.
 * Kept: the other clients (their deltas keep coming at their rate), REST
 * (prompt answers), the channels (they never stop writing) and the gateway's
 * memory: once the slow client's send buffer passes `ws.maxBufferBytes` the
 * feed marks it behind and sends it nothing more (runtime/gateway/ws.ts), so
 * what it holds stays bounded; when it reads again it gets the latest values
 * as a snapshot. Lost: that client's intermediate deltas.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../runtime/config/load.js';
import type { RunningRuntime } from '../../runtime/runtime.js';
import { feedClient, feedCounters } from '../helpers/feedClient.js';
import { eventually, sleep, usePrivateRedis, writeSite } from '../helpers/servers.js';
import { api, SITE_YAML, startFaultRuntime, TOKEN } from './site.js';

/** Long names: each delta of the wide model is ~100 kB, so a paused client's socket buffers fill within seconds. */
const wide = (i: number) => `a_rather_long_measurement_name_${i}`;
/** The shared fault site, with a wide channel and model beside it and a small buffer bound. */
const SITE = SITE_YAML.replace(
  '  port: 0\n',
  '  port: 0\n  rateLimit: { perSecond: 1000, burst: 1000 }\n  ws: { intervalMs: 50, maxBufferBytes: 65536 }\n',
).replace(
  'models:\n',
  `  - { id: w, protocol: virtual, pollMs: 50, pointsFile: wide.csv }
templates:
  wide:
    measurements: { ${Array.from({ length: 2000 }, (_, i) => `${wide(i)}: {}`).join(', ')} }
models:
  - { id: big, template: wide, channel: w }
`,
);
const WIDE_CSV = `type,id,name,sim.kind,sim.start,sim.step\n${Array.from({ length: 2000 }, (_, i) => `m,${i},${wide(i)},counter,0,1`).join('\n')}\n`;

const t = usePrivateRedis();
let rt: RunningRuntime;
let base: string;
beforeAll(async () => {
  ({ rt, base } = await startFaultRuntime(t.server.url, loadConfig(writeSite({ 'site.yaml': SITE, 'wide.csv': WIDE_CSV }))));
});
afterAll(async () => {
  await rt.stop();
});

const rssMb = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;

async function counters() {
  return feedCounters((await api(base, 'GET', '/metrics')).body as string);
}

describe('fault: a slow WebSocket client', () => {
  it('is cut off from deltas at its buffer bound; other clients, REST and the channels go on; memory stays bounded', { timeout: 40_000 }, async () => {
    const pid = JSON.parse((await eventually(() => t.raw.hget('actor:gateway', 'context'))) ?? '{}').pid as number;
    const fast = await feedClient(base, TOKEN);
    fast.ws.send(JSON.stringify({ op: 'subscribe', topics: ['model/inv'] }));
    await eventually(() => fast.messages.filter((m) => m.topic === 'model/inv' && !m.snapshot).length >= 5);
    const rss0 = rssMb(pid);

    const slow = await feedClient(base, TOKEN);
    slow.ws.send(JSON.stringify({ op: 'subscribe', topics: ['model/big'] }));
    slow.socket.pause();
    const pausedAt = Date.now();
    // While the slow client's buffers fill and after: REST answers promptly.
    const latencies: number[] = [];
    await eventually(
      async () => {
        for (const path of ['/health', '/api/v1/models/inv', '/api/v1/channels']) {
          const r = await api(base, 'GET', path);
          expect(r.status, path).toBe(200);
          latencies.push(r.ms);
        }
        return (await counters()).behind === 1;
      },
      25_000,
      200,
    );
    const behindAfterMs = Date.now() - pausedAt;
    // It stays behind (nothing more is queued for it) while the site publishes ~2 MB/s on its topic.
    const fastFrom = fast.arrivals.length;
    const channelFrom = Number(await t.raw.hget('comsrv:v1:m', '1'));
    const rssBehind = rssMb(pid);
    for (let i = 0; i < 10; i++) {
      const r = await api(base, 'GET', '/api/v1/models/inv');
      expect(r.status).toBe(200);
      latencies.push(r.ms);
      await sleep(400);
    }
    const c = await counters();
    expect(c).toEqual({ clients: 2, behind: 1, fell: 1 }); // not dropped, not flapping: bounded
    const rss1 = rssMb(pid);
    // Unbounded, its queue would have grown by ~2 MB/s over these 4 s on top of the time to fall behind.
    expect(rss1 - rssBehind).toBeLessThan(8);
    expect(rss1 - rss0).toBeLessThan(24);
    // The fast client got its deltas the whole time (coalesced: ~one a poll), with no gap.
    const during = fast.arrivals.slice(fastFrom);
    expect(during.length).toBeGreaterThan(20);
    const gaps = during.slice(1).map((a, i) => a - during[i]!);
    expect(Math.max(...gaps)).toBeLessThan(1_000);
    // The channel kept writing (50 ms polls over ~4 s).
    expect(Number(await t.raw.hget('comsrv:v1:m', '1')) - channelFrom).toBeGreaterThan(40);
    latencies.sort((a, b) => a - b);
    expect(latencies[latencies.length - 1]).toBeLessThan(1_000);

    // Reading again, it gets the latest values as a snapshot, and is no longer behind.
    slow.socket.resume();
    await eventually(() => slow.messages.filter((m) => m.topic === 'model/big' && m.snapshot).length >= 2, 15_000);
    await eventually(async () => (await counters()).behind === 0, 10_000, 300);
    const received = slow.messages.filter((m) => m.topic === 'model/big' && !m.snapshot).length;
    expect(received).toBeLessThan(((Date.now() - pausedAt) / 50) * 0.8);
    expect(behindAfterMs).toBeLessThan(25_000);
    slow.ws.close();
    fast.ws.close();
  });
});
