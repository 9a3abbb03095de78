/**
 * The cloud link over HTTP, against a small HTTP server written here: it
 * refuses (503) for a few seconds and then accepts; nothing is missing, in
 * order, seq without gaps, the header secret read from the environment. And
 * the two overflow strategies past a tiny maxBacklogMB while it refuses:
 * drop-oldest keeps the newest, refuse-new keeps the oldest and counts what
 * it did not take.
 */
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../runtime/config/load.js';
import { startRuntime } from '../../runtime/runtime.js';
import { eventually, quietLog, sleep, writeSite } from '../helpers/servers.js';
import { COUNTER_SITE as SITE } from '../helpers/mqttWatch.js';
import { privateRedisSuite } from '../helpers/suite.js';

const t = privateRedisSuite();

interface Batch {
  readonly headers: IncomingHttpHeaders;
  readonly body: { site: string; link: string; messages: Array<{ kind: string; seq: number; values?: { P: number } }> };
}

/** An HTTP server that answers 503 while `refusing`, and 200 (keeping the batch) after. */
async function ingest(): Promise<{ url: string; batches: Batch[]; refused: number; refusing: boolean }> {
  const state = { url: '', batches: [] as Batch[], refused: 0, refusing: true };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (state.refusing) {
        state.refused += 1;
        res.writeHead(503).end('busy');
        return;
      }
      state.batches.push({ headers: req.headers, body: JSON.parse(Buffer.concat(chunks).toString()) as Batch['body'] });
      res.writeHead(200).end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/ingest`;
  t.cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
  t.cleanups.push(() => server.closeAllConnections());
  return state;
}

const httpLink = (url: string, extra = '') => `cloud:
  links:
    - id: web
      type: http
      url: "${url}"
      headers: { X-Site: demo }
      headersEnv: { Authorization: VOLTAGE_TEST_CLOUD_TOKEN }
      reconnect: { minBackoffMs: 200, maxBackoffMs: 1000 }
${extra}`;

const messages = (batches: readonly Batch[]) => batches.flatMap((b) => b.body.messages);

/** Accepts from now on, waits until the link has caught up (at most `maxLag` unsent), stops the runtime; the messages received, seq 1, 2, 3, … */
async function acceptAndDrain(srv: { batches: Batch[]; refusing: boolean }, minMessages: number, maxLag: number, counted = '') {
  srv.refusing = false;
  await eventually(async () => {
    const g = (await t.bus.telemetry.outboxStats()).groups.find((x) => x.name === 'cloud:web');
    const ok = g !== undefined && g.pending === 0 && (g.lag ?? 0) <= maxLag && messages(srv.batches).length > minMessages;
    return ok && (counted === '' || Number(await t.raw.hget('cloud:web:stats', counted)) > 0);
  }, 10_000);
  // New entries taken (and delivered) after what was lost.
  const n = messages(srv.batches).length;
  await eventually(() => messages(srv.batches).length > n + 10, 5_000);
  await t.running?.stop();
  t.running = undefined;
  const msgs = messages(srv.batches);
  expect(msgs.map((m) => m.seq)).toEqual(msgs.map((_, i) => i + 1));
  return { msgs, values: msgs.map((m) => m.values!.P) };
}

describe('cloud link over HTTP', () => {
  it('refused (503) for a few seconds, then accepted: nothing missing, in order, seq without gaps, the secret header from the environment', async () => {
    process.env.VOLTAGE_TEST_CLOUD_TOKEN = 'Bearer s3cret';
    t.cleanups.push(() => delete process.env.VOLTAGE_TEST_CLOUD_TOKEN);
    const srv = await ingest();
    t.running = await startRuntime(loadConfig(writeSite({ 'site.yaml': SITE, 'cloud.yaml': httpLink(srv.url) })), { redisUrl: t.server.url, log: quietLog });
    await eventually(() => srv.refused >= 3, 5_000);
    await sleep(2_500);
    // Each seq once, from 1, without a gap; the counter's values in poll order without a gap either.
    const { msgs, values } = await acceptAndDrain(srv, 80, 0);
    expect(values).toEqual(values.map((_, i) => values[0]! + i));
    expect(values[0]).toBeLessThanOrEqual(2);
    expect(srv.batches[0]!.body).toMatchObject({ site: 'site', link: 'web' });
    expect(msgs[0]).toMatchObject({ kind: 'data', model: 'inv' });
    expect(srv.batches[0]!.headers).toMatchObject({ authorization: 'Bearer s3cret', 'x-site': 'demo', 'content-type': 'application/json' });
    expect(Number(await t.raw.hget('cloud:web:stats', 'refused'))).toBeGreaterThanOrEqual(3);
  }, 20_000);

  for (const overflow of ['drop-oldest', 'refuse-new'] as const) {
    it(`past maxBacklogMB while refused, ${overflow}: ${overflow === 'drop-oldest' ? 'the oldest are dropped' : 'the oldest are kept, the new ones not taken'}, counted exactly`, async () => {
      const srv = await ingest();
      const cfg = httpLink(srv.url, `      maxBacklogMB: 0.002\n      overflow: ${overflow}\n`);
      t.running = await startRuntime(loadConfig(writeSite({ 'site.yaml': SITE, 'cloud.yaml': cfg })), { redisUrl: t.server.url, log: quietLog });
      const counter = overflow === 'drop-oldest' ? 'dropped' : 'notTaken';
      await eventually(
        async () => Number(await t.raw.hget('cloud:web:stats', counter)) > 0 || (await t.raw.get('cloud:web:refusing'))?.includes('from'),
        8_000,
      );
      await sleep(1_500);
      // refuse-new counts a refused range when it closes: once the kept backlog is under the bound again (checked every second).
      const { values } = await acceptAndDrain(srv, 20, 2, counter);
      const stats = await t.raw.hgetall('cloud:web:stats');
      // Every poll is either delivered or counted: the counter's values delivered plus the count lost, without overlap.
      const lost = Number(stats[counter] ?? 0);
      expect(lost).toBeGreaterThan(0);
      // (The counter starts at 1, and the link's group exists before the first poll: cloudKind.outbox, synced at load.)
      expect(values[values.length - 1]! - values.length - lost).toBe(0);
      // refuse-new kept the oldest: what was delivered starts at the first polls, and has a hole where it refused.
      if (overflow === 'refuse-new') expect(values[0]).toBeLessThanOrEqual(2);
    }, 25_000);
  }
});
