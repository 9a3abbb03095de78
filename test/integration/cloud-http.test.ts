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
import { HttpTransport, WHOLE_REFUSALS_PARKED } from '../../actors/cloud/httpTransport.js';
import type { CloudRefusedError } from '../../actors/cloud/transport.js';
import { httpLinkSchema } from '../../runtime/config/cloud.js';
import { loadConfig } from '../../runtime/config/load.js';
import { startRuntime } from '../../runtime/runtime.js';
import { ALL_SEQS, RESEND_FAILURES_MAX, seqRange } from '../../runtime/domain/cloudResend.js';
import { cancelResend } from '../../runtime/gateway/routes/cloud.js';
import { eventually, quietLog, sleep, writeSite } from '../helpers/servers.js';
import { COUNTER_SITE as SITE } from '../helpers/mqttWatch.js';
import { privateRedisSuite } from '../helpers/suite.js';

const t = privateRedisSuite();

interface Batch {
  readonly headers: IncomingHttpHeaders;
  readonly body: { site: string; link: string; messages: Array<{ kind: string; seq: number; values?: { P: number } }> };
}

/**
 * An HTTP server that answers `refuseStatus` (503) to everything while `refusing`; after, 200 (keeping the batch),
 * or what `judge` answers about the batch's content (a status other than 2xx: not kept).
 */
async function ingest(
  judge: (body: Batch['body']) => number = () => 200,
): Promise<{ url: string; batches: Batch[]; refused: number; refusing: boolean; refuseStatus: number }> {
  const state = { url: '', batches: [] as Batch[], refused: 0, refusing: true, refuseStatus: 503 };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString()) as Batch['body'];
      const status = state.refusing ? state.refuseStatus : judge(body);
      if (status !== 200) {
        state.refused += 1;
        res.writeHead(status).end('refused');
        return;
      }
      state.batches.push({ headers: req.headers, body });
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

const METRICS_TOKEN = 'cloud-http-viewer-token';

/** The link's parked-message series on the running gateway's /metrics. */
async function parkedMetrics(link: string): Promise<{ parked: number; unparked: number; refusedAgain: number }> {
  const port = await eventually(() => t.running?.gatewayPort());
  const r = await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` }, signal: AbortSignal.timeout(5_000) });
  expect(r.status).toBe(200);
  const text = await r.text();
  const series = (name: string) => Number(new RegExp(`^${name}\\{link="${link}"\\} (\\d+)$`, 'm').exec(text)?.[1]);
  return {
    parked: series('voltage_cloud_parked'),
    unparked: series('voltage_cloud_unparked_total'),
    refusedAgain: series('voltage_cloud_refused_again_total'),
  };
}

/**
 * Runs the site against `srv`, which refuses everything (400) at first: a backlog past 55 polls, then taken in large
 * batches, the messages its judge refuses for their content (5, 15, … 55) split out and parked.
 */
async function parkSix(srv: { refusing: boolean; refuseStatus: number; refused: number; url: string }, gateway = false): Promise<void> {
  srv.refuseStatus = 400;
  const site = loadConfig(writeSite({ 'site.yaml': gateway ? `gateway:\n  port: 0\n${SITE}` : SITE, 'cloud.yaml': httpLink(srv.url) }));
  const tokens = gateway ? { gatewayTokens: [{ name: 'viewer', role: 'viewer' as const, token: METRICS_TOKEN }] } : {};
  t.running = await startRuntime(site, { redisUrl: t.server.url, log: quietLog, ...tokens });
  await eventually(() => srv.refused >= 3, 5_000);
  await sleep(2_800);
  srv.refusing = false;
  await eventually(async () => (await t.bus.cloud.parked.count('web')) >= 6, 10_000);
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

  it('a message the receiver refuses for its content (422) holds back nothing: the batch is split down to it, which is parked and counted; a batch refused whole (400) waits', async () => {
    // Every counter value ending in 5 is one the receiver will never take.
    const poison = (m: { values?: { P: number } }) => (m.values?.P ?? 0) % 10 === 5;
    const srv = await ingest((b) => (b.messages.some(poison) ? 422 : 200));
    srv.refuseStatus = 400; // first, the receiver refuses everything for its content (a schema it no longer takes)
    t.running = await startRuntime(loadConfig(writeSite({ 'site.yaml': SITE, 'cloud.yaml': httpLink(srv.url) })), { redisUrl: t.server.url, log: quietLog });
    await eventually(() => srv.refused >= 3, 5_000);
    // Refused whole: nothing parked, the backlog waits.
    expect(await t.raw.xlen('cloud:web:refused')).toBe(0);
    srv.refusing = false;
    await eventually(() => messages(srv.batches).length >= 60, 10_000);
    await t.running.stop();
    t.running = undefined;
    const delivered = messages(srv.batches);
    const seqs = delivered.map((m) => m.seq);
    // In order, once each; none of the refused ones.
    expect(seqs).toEqual([...new Set(seqs)].sort((x, y) => x - y));
    expect(delivered.filter(poison)).toEqual([]);
    const parked = (await t.raw.xrange('cloud:web:refused', '-', '+')).map(
      ([, f]) => Object.fromEntries(f.flatMap((v, i) => (i % 2 === 0 ? [[v, f[i + 1]!]] : []))) as Record<string, string>,
    );
    expect(parked.length).toBeGreaterThanOrEqual(4);
    for (const f of parked) {
      expect(f).toMatchObject({ topic: srv.url, reason: 'HTTP 422' });
      const m = JSON.parse(f.payload!) as { seq: number; values: { P: number } };
      expect(poison(m)).toBe(true);
      expect(m.seq).toBe(Number(f.seq));
    }
    expect(Number(await t.raw.hget('cloud:web:stats', 'refused'))).toBeGreaterThanOrEqual(parked.length);
    expect(await t.raw.hget('cloud:web:stats', 'lastRefusal')).toBe(`HTTP 422: ${srv.url}`);
    // Every seq given is delivered or parked, exactly once; the graceful stop left nothing pending.
    expect(await t.raw.hgetall('cloud:web:inflight')).toEqual({});
    const all = [...seqs, ...parked.map((f) => Number(f.seq))].sort((x, y) => x - y);
    const lastSeq = Number(await t.raw.get('cloud:web:seq'));
    expect(all).toEqual(Array.from({ length: lastSeq }, (_, i) => i + 1));
  }, 25_000);

  it('parked messages sent again on request: refused again (422) while the receiver still refuses them, left parked and counted with the link online; once it takes them, each arrives once with its seq and the parked stream is empty', async () => {
    // The counter's values 5, 15, … 55 are refused for their content until `fixed`; later ones never (a live batch is one message,
    // which refused alone would be retried with the backoff rather than parked).
    let fixed = false;
    const poison = (m: { values?: { P: number } }) => !fixed && (m.values?.P ?? 0) % 10 === 5 && (m.values?.P ?? 0) <= 55;
    const srv = await ingest((b) => (b.messages.some(poison) ? 422 : 200));
    await parkSix(srv, true);
    const parkedNow = async () => (await t.bus.cloud.parked.newest('web', 100)).sort((a, b) => Number(a.seq) - Number(b.seq));
    const first = await parkedNow();
    expect(first.map((p) => (JSON.parse(p.payload) as { values: { P: number } }).values.P).sort((x, y) => x - y)).toEqual([5, 15, 25, 35, 45, 55]);
    expect(await parkedMetrics('web')).toEqual({ parked: 6, unparked: 0, refusedAgain: 0 });
    const done = (id: string) =>
      eventually(async () => {
        const o = await t.bus.cloud.parked.outcome('web', id);
        return o?.state === 'done' ? o : undefined;
      }, 10_000);
    const online = async () => (JSON.parse((await t.raw.hget('actor:cloud/web', 'context')) ?? '{}') as { connects: number }).connects;
    const connects = await online();

    const again = await done(await t.bus.cloud.parked.request('web', ALL_SEQS, 'test'));
    expect(again).toMatchObject({ resent: 0, refused: 6 });
    expect((await parkedNow()).map((p) => p.id)).toEqual(first.map((p) => p.id));
    expect(await t.raw.hget('cloud:web:stats', 'refusedAgain')).toBe('6');
    expect(await parkedMetrics('web')).toEqual({ parked: 6, unparked: 0, refusedAgain: 6 });
    expect(await online()).toBe(connects);

    fixed = true;
    const taken = await done(await t.bus.cloud.parked.request('web', seqRange(Number(first[3]!.seq), null), 'test'));
    expect(taken).toMatchObject({ resent: 3, refused: 0 });
    expect((await parkedNow()).map((p) => p.seq)).toEqual(first.slice(0, 3).map((p) => p.seq));
    expect(await parkedMetrics('web')).toEqual({ parked: 3, unparked: 3, refusedAgain: 6 });
    expect(await done(await t.bus.cloud.parked.request('web', ALL_SEQS, 'test'))).toMatchObject({ resent: 3, refused: 0 });
    expect(await t.bus.cloud.parked.count('web')).toBe(0);
    expect(await t.raw.hget('cloud:web:stats', 'unparked')).toBe('6');
    expect(await parkedMetrics('web')).toEqual({ parked: 0, unparked: 6, refusedAgain: 6 });
    await t.running?.stop();
    t.running = undefined;
    // Every seq the link gave arrived once (the six out of order, as they were parked: kind, seq and payload).
    const msgs = messages(srv.batches);
    const lastSeq = Number(await t.raw.get('cloud:web:seq'));
    expect(msgs.map((m) => m.seq).sort((x, y) => x - y)).toEqual(Array.from({ length: lastSeq }, (_, i) => i + 1));
    for (const p of first) expect(msgs.find((m) => m.seq === Number(p.seq))).toEqual({ kind: 'data', ...(JSON.parse(p.payload) as object) });
  }, 30_000);

  it('a receiver that answers 500 to resent (old) messages only: the live messages keep arriving during the resend, the link stays online, the request ends failed with the reason, its messages still parked; a cancelled request ends cancelled', async () => {
    let fixed = false;
    let oldUpTo = 0; // while set, a batch holding a seq up to it (a resent one) is answered 500
    let oldRefused = 0;
    const poison = (m: { values?: { P: number } }) => !fixed && (m.values?.P ?? 0) % 10 === 5 && (m.values?.P ?? 0) <= 55;
    const srv = await ingest((b) => {
      if (b.messages.some((m) => m.seq <= oldUpTo)) {
        oldRefused += 1;
        return 500;
      }
      return b.messages.some(poison) ? 422 : 200;
    });
    await parkSix(srv);
    fixed = true;
    const before = (await t.bus.cloud.parked.newest('web', 100)).map((p) => p.id).sort();
    oldUpTo = Math.max(...(await t.bus.cloud.parked.newest('web', 100)).map((p) => Number(p.seq)));
    const online = async () => (JSON.parse((await t.raw.hget('actor:cloud/web', 'context')) ?? '{}') as { connects: number }).connects;
    const connects = await online();
    const liveBefore = messages(srv.batches).length;

    const id = await t.bus.cloud.parked.request('web', ALL_SEQS, 'test');
    const o = await eventually(async () => {
      const x = await t.bus.cloud.parked.outcome('web', id);
      return x?.state === 'failed' ? x : undefined;
    }, 10_000);
    // Tried RESEND_FAILURES_MAX times, then given up: counted as refused again, every one still parked.
    expect(oldRefused).toBe(RESEND_FAILURES_MAX);
    expect(o).toMatchObject({ resent: 0, refused: 6 });
    expect(o.lastError).toContain('answered 500');
    expect((await t.bus.cloud.parked.newest('web', 100)).map((p) => p.id).sort()).toEqual(before);
    // The live uplink went on meanwhile, on the same connection (no outage, no reconnect).
    const live = messages(srv.batches).slice(liveBefore);
    expect(live.length).toBeGreaterThan(5);
    expect(live.every((m) => m.seq > oldUpTo)).toBe(true);
    expect(await online()).toBe(connects);
    expect(await t.raw.hget('actor:cloud/web', 'state')).toContain('online');

    // Cancelled while it still has steps to take (each slice waits before it is tried again): it ends cancelled.
    const again = await t.bus.cloud.parked.request('web', ALL_SEQS, 'test');
    await eventually(async () => (await t.bus.cloud.parked.outcome('web', again))?.state === 'running', 5_000, 2);
    expect(await cancelResend(t.bus, 'web', again, 'otto')).toMatchObject({ state: 'running' });
    const c = await eventually(async () => {
      const x = await t.bus.cloud.parked.outcome('web', again);
      return x?.state === 'cancelled' ? x : undefined;
    }, 5_000);
    expect(c.lastError).toBe('cancelled by otto');
    expect((await t.bus.cloud.parked.newest('web', 100)).map((p) => p.id).sort()).toEqual(before);
    await expect(cancelResend(t.bus, 'web', again, 'otto')).rejects.toMatchObject({ status: 409 });
    await expect(cancelResend(t.bus, 'web', '1-0', 'otto')).rejects.toMatchObject({ status: 404 });
    // Taken once the receiver takes old messages again.
    oldUpTo = 0;
    const last = await t.bus.cloud.parked.request('web', ALL_SEQS, 'test');
    const taken = await eventually(async () => {
      const x = await t.bus.cloud.parked.outcome('web', last);
      return x?.state === 'done' ? x : undefined;
    }, 10_000);
    expect(taken).toMatchObject({ resent: before.length, refused: 0, lastError: null });
    expect(await t.bus.cloud.parked.count('web')).toBe(0);
    expect(Number(await t.raw.hget('cloud:web:stats', 'unparked'))).toBe(before.length);
  }, 40_000);

  it(`one message alone in its batch, refused for its content every time: sent again with the backoff, parked at the ${WHOLE_REFUSALS_PARKED}th refusal`, async () => {
    const srv = await ingest(() => 422);
    srv.refusing = false;
    const transport = new HttpTransport(httpLinkSchema.parse({ id: 'web', type: 'http', url: srv.url }), 'site', quietLog);
    await transport.connect();
    const batch = [{ kind: 'data' as const, model: 'inv', channel: '', payload: '{"seq":7,"values":{"P":5}}' }];
    for (let i = 1; i < WHOLE_REFUSALS_PARKED; i++) {
      const e = await transport.deliver(batch).then(
        () => undefined,
        (x: unknown) => x as CloudRefusedError,
      );
      expect(e?.refused, `try ${i}`).toBe(true);
    }
    const { acked } = await transport.deliver(batch);
    expect(await acked).toEqual([{ index: 0, topic: srv.url, payload: batch[0]!.payload, reasonCode: 422, reason: 'HTTP 422' }]);
    expect(srv.refused).toBe(WHOLE_REFUSALS_PARKED);
  });

  it(`a resend's slices between the live tries leave the count of a live batch refused whole: it is still parked at the ${WHOLE_REFUSALS_PARKED}th refusal`, async () => {
    const srv = await ingest(() => 422);
    srv.refusing = false;
    const transport = new HttpTransport(httpLinkSchema.parse({ id: 'web', type: 'http', url: srv.url }), 'site', quietLog);
    await transport.connect();
    const live = [{ kind: 'data' as const, model: 'inv', channel: '', payload: '{"seq":7,"values":{"P":5}}' }];
    const parked = [{ kind: 'data' as const, model: '', channel: '', payload: '{"seq":2,"values":{"P":1}}' }];
    for (let i = 1; i < WHOLE_REFUSALS_PARKED; i++) {
      await expect(
        transport.deliver(live, () => false),
        `try ${i}`,
      ).rejects.toMatchObject({ refused: true });
      // A slice of parked messages refused too: each one's answer, whatever the live count.
      const { acked } = await transport.deliver(parked, () => false, { parked: true });
      expect(await acked).toHaveLength(1);
    }
    const { acked } = await transport.deliver(live, () => false);
    expect(await acked).toEqual([{ index: 0, topic: srv.url, payload: live[0]!.payload, reasonCode: 422, reason: 'HTTP 422' }]);
  });

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
