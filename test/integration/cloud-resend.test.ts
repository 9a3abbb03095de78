/**
 * Parked messages sent again by the running link, against a real mosquitto
 * whose ACL refuses one model's topic (MQTT 5, PUBACK 0x87) and is then
 * changed (SIGHUP) to allow it: asked through the gateway and through
 * `voltage cloud LINK --resend`; while the broker still refuses, they stay
 * parked and are counted again; once it allows, each arrives once with its
 * original seq and payload, the parked stream is empty and the counters add
 * up. The routes' errors (unknown link, bad range, a viewer's POST). The
 * HTTP transport's path (422) is in cloud-http.test.ts.
 */
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../runtime/config/load.js';
import { sha256 } from '../../runtime/gateway/http.js';
import { startRuntime } from '../../runtime/runtime.js';
import { ALL_SEQS } from '../../runtime/domain/cloudResend.js';
import { spawnMosquitto } from '../helpers/mosquitto.js';
import { startTcpProxy } from '../helpers/tcpProxy.js';
import { watchBroker } from '../helpers/mqttWatch.js';
import { eventually, quietLog, sleep, writeSite } from '../helpers/servers.js';
import { privateRedisSuite } from '../helpers/suite.js';

const t = privateRedisSuite();

const VIEWER = 'viewer-token';
const OPERATOR = 'operator-token';

const SITE = `gateway:
  port: 0
  tokens:
    - { name: vera, role: viewer, sha256: ${sha256(VIEWER)} }
    - { name: otto, role: operator, sha256: ${sha256(OPERATOR)} }
channels:
  - id: v1
    protocol: virtual
    pollMs: 40
    points:
      - { type: m, id: 1, sim: { kind: counter, start: 1, step: 1 } }
      - { type: m, id: 2, sim: { kind: counter, start: 1, step: 1 } }
models:
  - id: inv
    measurements: { P: {} }
    mapping: { P: "v1:m:1" }
  - id: meter
    measurements: { E: {} }
    mapping: { E: "v1:m:2" }
`;

const CLOUD = (url: string) => `cloud:
  links:
    - id: main
      url: "${url}"
      protocolVersion: 5
      reconnect: { minBackoffMs: 200, maxBackoffMs: 1000 }
`;

/** `voltage …` as a user runs it; resolves with its exit code and output. */
function voltage(args: string[], redisUrl: string): Promise<{ code: number | null; out: string }> {
  const proc = spawn(process.execPath, ['runtime/bin/voltage.js', ...args], {
    env: { ...process.env, REDIS_URL: redisUrl },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const timer = setTimeout(() => proc.kill('SIGKILL'), 30_000);
  return new Promise((r) =>
    proc.on('exit', (code) => {
      clearTimeout(timer);
      r({ code, out });
    }),
  );
}

interface ErrorBody {
  error: { code: string; message: string };
}

describe('cloud link: parked messages sent again', () => {
  it('MQTT 5: refused by the ACL, parked; a resend while still refused leaves them parked and counted; once the ACL allows, each arrives once with its original seq, the parked stream is empty and the counters add up', async () => {
    const b = await spawnMosquitto({ denyPublish: ['voltage/site/data/inv'] });
    t.cleanups.push(() => b.stop());
    const w = await watchBroker(t.cleanups, b.url, 'voltage/site/data/#');
    t.running = await startRuntime(loadConfig(writeSite({ 'site.yaml': SITE, 'cloud.yaml': CLOUD(b.url) })), { redisUrl: t.server.url, log: quietLog });
    const port = await eventually(() => t.running?.gatewayPort());
    const api = async <T>(path: string, token: string, body?: unknown): Promise<{ status: number; body: T }> => {
      const r = await fetch(`http://127.0.0.1:${port}${path}`, {
        method: body === undefined ? 'GET' : 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      return { status: r.status, body: (await r.json()) as T };
    };
    const parked = () => t.bus.cloud.parked.newest('main', 10_000);
    await eventually(async () => (await t.bus.cloud.parked.count('main')) >= 20, 10_000);

    // The routes' errors, JSON with a code.
    const unknown = await api<ErrorBody>('/api/v1/cloud/nope/refused/resend', OPERATOR, {});
    expect(unknown).toMatchObject({ status: 404, body: { error: { code: 'NOT_FOUND' } } });
    expect(unknown.body.error.message).toContain("no cloud link 'nope'");
    expect((await api<ErrorBody>('/api/v1/cloud/nope/refused', VIEWER)).status).toBe(404);
    for (const bad of [{ fromSeq: 9, toSeq: 3 }, { fromSeq: 0 }, { fromSeq: 'x' }]) {
      const r = await api<ErrorBody>('/api/v1/cloud/main/refused/resend', OPERATOR, bad);
      expect(r, JSON.stringify(bad)).toMatchObject({ status: 400, body: { error: { code: 'BAD_RANGE' } } });
    }
    // Not a body of this route at all: a bad request, not a bad range.
    for (const bad of [{ from: 1 }, [1, 2], 'x', null]) {
      const r = await api<ErrorBody>('/api/v1/cloud/main/refused/resend', OPERATOR, bad);
      expect(r, JSON.stringify(bad)).toMatchObject({ status: 400, body: { error: { code: 'BAD_REQUEST' } } });
    }
    expect((await api<ErrorBody>('/api/v1/cloud/main/refused/resend', VIEWER, {})).body.error.code).toBe('FORBIDDEN');
    expect((await api<ErrorBody>('/api/v1/cloud/main/refused?count=0', VIEWER)).status).toBe(400);
    expect(await t.raw.xlen('cloud:main:resends')).toBe(0);

    // The viewer's reads: the link's counters, the newest parked messages.
    const list = await api<{ links: Array<Record<string, unknown>> }>('/api/v1/cloud', VIEWER);
    expect(list.status).toBe(200);
    expect(list.body.links).toHaveLength(1);
    expect(list.body.links[0]).toMatchObject({ id: 'main', status: 'running', lastRefusal: '0x87 not authorized: voltage/site/data/inv' });
    expect(list.body.links[0]!.parked).toBeGreaterThanOrEqual(20);
    const some = await api<{ parked: number; messages: Array<{ seq: number; topic: string; reason: string; payload: string }> }>(
      '/api/v1/cloud/main/refused?count=5',
      VIEWER,
    );
    expect(some.body.messages).toHaveLength(5);
    for (const m of some.body.messages) {
      expect(m).toMatchObject({ topic: 'voltage/site/data/inv', reason: '0x87' });
      expect(JSON.parse(m.payload)).toMatchObject({ seq: m.seq, model: 'inv' });
    }
    const cli = await voltage(['cloud', 'main', '--refused', '--count', '3'], t.server.url);
    expect(cli.code, cli.out).toBe(0);
    expect(cli.out).toMatch(/\d+ message\(s\) parked by link 'main', the newest 3/);
    expect(cli.out.match(/^ {2}seq \d+ {2}0x87 {2}voltage\/site\/data\/inv/gm)).toHaveLength(3);

    // A resend while the broker still refuses: every one refused again, left parked, counted; the link stays online.
    const before = await parked();
    const asked = await api<{ request: string; state: string }>('/api/v1/cloud/main/refused/resend', OPERATOR, {});
    expect(asked).toMatchObject({ status: 202, body: { state: 'requested' } });
    const o1 = await eventually(async () => {
      const r = await api<{ state: string; resent: number; refused: number }>(`/api/v1/cloud/main/resends/${asked.body.request}`, VIEWER);
      return r.body.state === 'done' ? r.body : undefined;
    }, 10_000);
    expect(o1.resent).toBe(0);
    expect(o1.refused).toBeGreaterThanOrEqual(before.length);
    const ids = new Set((await parked()).map((p) => p.id));
    expect(before.every((p) => ids.has(p.id))).toBe(true);
    expect(Number(await t.raw.hget('cloud:main:stats', 'refusedAgain'))).toBe(o1.refused);
    expect(await t.raw.hget('actor:cloud/main', 'state')).toContain('online');
    expect(w.got.filter((m) => m.topic === 'voltage/site/data/inv')).toEqual([]);
    // Audited with the other operator actions: the refused requests and the accepted one, with who.
    const audit = (await t.raw.xrange('audit:commands', '-', '+')).map(([, f]) => f.join(' '));
    expect(audit.filter((a) => a.includes('cloud.resend') && a.includes('outcome rejected')).length).toBeGreaterThanOrEqual(8);
    // A request that has ended cannot be cancelled (409); an unknown one is 404, a viewer may not (403); each audited.
    const del = async (path: string, token: string) => {
      const r = await fetch(`http://127.0.0.1:${port}${path}`, { method: 'DELETE', headers: { authorization: `Bearer ${token}` } });
      return { status: r.status, body: (await r.json()) as ErrorBody };
    };
    expect(await del(`/api/v1/cloud/main/resends/${asked.body.request}`, OPERATOR)).toMatchObject({ status: 409, body: { error: { code: 'ALREADY_ENDED' } } });
    expect(await del('/api/v1/cloud/main/resends/1-0', OPERATOR)).toMatchObject({ status: 404, body: { error: { code: 'NOT_FOUND' } } });
    expect(await del('/api/v1/cloud/nope/resends/1-0', OPERATOR)).toMatchObject({ status: 404, body: { error: { code: 'NOT_FOUND' } } });
    expect((await del(`/api/v1/cloud/main/resends/${asked.body.request}`, VIEWER)).status).toBe(403);
    const cancels = (await t.raw.xrange('audit:commands', '-', '+')).map(([, f]) => f.join(' ')).filter((a) => a.includes('cloud.resend.cancel'));
    expect(cancels.filter((a) => a.includes('outcome rejected') && a.includes('who otto'))).toHaveLength(3);
    expect(audit.some((a) => a.includes('cloud.resend') && a.includes('who otto') && a.includes('outcome accepted'))).toBe(true);

    // The broker's ACL fixed: live messages of the model flow; what is parked is sent again through the CLI.
    b.reloadAcl([]);
    await eventually(() => w.got.some((m) => m.topic === 'voltage/site/data/inv'), 10_000);
    await sleep(500); // the refusals of the batches in flight at the reload are parked by now
    const snapshot = await parked();
    expect(snapshot.length).toBeGreaterThanOrEqual(before.length);
    const resend = await voltage(['cloud', 'main', '--resend'], t.server.url);
    expect(resend.code, resend.out).toBe(0);
    const resent = Number(/done — resent (\d+) .*refused again 0 .*; 0 parked now/.exec(resend.out)?.[1]);
    expect(resent, resend.out).toBe(snapshot.length);
    expect(await t.bus.cloud.parked.count('main')).toBe(0);
    // Each parked message arrived once, with its seq and its payload as parked.
    await eventually(() => snapshot.every((p) => w.got.some((m) => m.body.seq === Number(p.seq))), 5_000);
    for (const p of snapshot) {
      const got = w.got.filter((m) => m.body.seq === Number(p.seq));
      expect(got, `seq ${p.seq}`).toHaveLength(1);
      expect(got[0]).toMatchObject({ topic: 'voltage/site/data/inv', body: JSON.parse(p.payload) });
    }
    // The counters add up: every message ever parked was taken on the resend, and nothing else was refused.
    const stats = await t.raw.hgetall('cloud:main:stats');
    expect(Number(stats.unparked)).toBe(Number(stats.refused));
    expect(Number(stats.refusedAgain)).toBe(o1.refused);
    const after = await api<{ links: Array<Record<string, unknown>> }>('/api/v1/cloud', VIEWER);
    expect(after.body.links[0]).toMatchObject({ parked: 0, unparked: Number(stats.refused), refusedAgain: o1.refused });
    const table = await voltage(['cloud'], t.server.url);
    expect(table.code, table.out).toBe(0);
    expect(table.out).toMatch(/^LINK\s+STATUS\s+STATE\s+SEQ\s+SENT\s+REFUSED\s+PARKED/m);
    expect(table.out).toMatch(new RegExp(`^main\\s+running\\s+\\S+\\s+\\d+\\s+\\d+\\s+${stats.refused}\\s+0\\s+${stats.refused}\\s+${o1.refused}\\s`, 'm'));

    // Over the whole run, every seq the link gave arrived exactly once: live, or parked and sent again.
    await t.running.stop();
    t.running = undefined;
    const lastSeq = Number(await t.raw.get('cloud:main:seq'));
    await eventually(() => new Set(w.got.map((m) => m.body.seq)).size >= lastSeq, 5_000);
    expect(w.got.map((m) => m.body.seq as number).sort((x, y) => x - y)).toEqual(Array.from({ length: lastSeq }, (_, i) => i + 1));
  }, 60_000);

  it('a resend cut off by a lost connection goes on after the reconnect from where it was: every parked message arrives, at least once with its seq, none is left parked', async () => {
    // A window of 1,000 (the broker's Receive Maximum) and no Nagle: mosquitto's defaults (20, Nagle on) behind the
    // proxy make a slice of 100 take ~200 ms here.
    const b = await spawnMosquitto({ maxInflight: 1000, tcpNoDelay: true });
    t.cleanups.push(() => b.stop());
    const proxy = await startTcpProxy(b.port, t.cleanups);
    const w = await watchBroker(t.cleanups, b.url, 'voltage/site/resent/#');
    t.running = await startRuntime(loadConfig(writeSite({ 'site.yaml': SITE, 'cloud.yaml': CLOUD(`mqtt://127.0.0.1:${proxy.port}`) })), {
      redisUrl: t.server.url,
      log: quietLog,
    });
    const online = async () => (await t.raw.hget('actor:cloud/main', 'state'))?.includes('online') === true;
    await eventually(online);
    // Parked as the link parks them, on a topic of their own and with seqs far from the live ones.
    const n = 5_000;
    for (let i = 0; i < n; i += 1_000) {
      const tx = t.raw.multi();
      for (let k = i; k < i + 1_000; k++)
        tx.xadd(
          'cloud:main:refused',
          '*',
          'seq',
          String(1_000_000 + k),
          'topic',
          'voltage/site/resent/inv',
          'reason',
          '0x87',
          'payload',
          `{"seq":${1_000_000 + k},"ts":1,"model":"inv","values":{"P":${k}}}`,
        );
      await tx.exec();
    }
    const id = await t.bus.cloud.parked.request('main', ALL_SEQS, 'test');
    await eventually(async () => ((await t.bus.cloud.parked.outcome('main', id))?.resent ?? 0) >= 500, 10_000, 2);
    proxy.dropRequests(true);
    await eventually(async () => !(await online()), 5_000, 5);
    const cut = await t.bus.cloud.parked.outcome('main', id);
    expect(cut?.state).toBe('running');
    expect(cut!.resent).toBeLessThan(n);
    proxy.dropRequests(false);
    const o = await eventually(async () => {
      const x = await t.bus.cloud.parked.outcome('main', id);
      return x?.state === 'done' ? x : undefined;
    }, 25_000);
    // Each counted once, when the cloud's answer was committed; none left.
    expect(o).toMatchObject({ resent: n, refused: 0 });
    expect(await t.bus.cloud.parked.count('main')).toBe(0);
    await eventually(() => new Set(w.got.map((m) => m.body.seq)).size === n, 5_000);
    // What was in flight at the cut may come twice (one slice at most: 100), with its seq.
    expect(w.got.length - n).toBeLessThanOrEqual(100);
    expect(Number(await t.raw.hget('cloud:main:stats', 'unparked'))).toBe(n);
  }, 40_000);

  it('voltage cloud: an unknown link and a bad range are refused with a clear message (exit 2), nothing recorded', async () => {
    const b = await spawnMosquitto();
    t.cleanups.push(() => b.stop());
    t.running = await startRuntime(loadConfig(writeSite({ 'site.yaml': SITE, 'cloud.yaml': CLOUD(b.url) })), { redisUrl: t.server.url, log: quietLog });
    await eventually(async () => (await t.raw.hget('actor:cloud/main', 'state'))?.includes('online'));
    const unknown = await voltage(['cloud', 'nope', '--resend'], t.server.url);
    expect(unknown.code).toBe(2);
    expect(unknown.out).toContain("no cloud link 'nope' in the loaded site");
    const bad = await voltage(['cloud', 'main', '--resend', '9-3'], t.server.url);
    expect(bad.code).toBe(2);
    expect(bad.out).toContain('fromSeq 9 is after toSeq 3');
    expect(await t.raw.exists('cloud:main:resends', 'cloud:nope:resends')).toBe(0);
    // Nothing parked: a resend is done at once, with nothing sent.
    const none = await voltage(['cloud', 'main', '--resend', '1-'], t.server.url);
    expect(none.code, none.out).toBe(0);
    expect(none.out).toContain('done — resent 0 (taken by the cloud, no longer parked), refused again 0 (still parked); 0 parked now');
  }, 40_000);
});
