/**
 * Fault: Redis killed with kill -9 and restarted on the same port and folder
 * with appendonly yes (appendfsync always).
 * Kept: values, the site, both mappings, the actor tree, the command group,
 * and a command's record; controls work again. Lost: nothing accepted.
 * Recovery is bounded from the moment Redis answers again (loaded): the
 * runtime writes within RECOVERY_MS, whether Redis took a while to load its
 * AOF (the runtime's connections ask every 100 ms whether it is done, not
 * after Redis's estimate of the loading time: with a 100 MB AOF that estimate
 * made a client ready 10.3 s after the start, the load took 1.3 s; a test
 * cannot afford such an AOF, so this one loads a small one slowly, where the
 * estimate is about right) or to come back at all (reconnection attempts at
 * most ~1.2 s apart; with attempts up to 5 s apart, the second test fails:
 * 4.8 s).
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import type { RunningRuntime } from '../../runtime/runtime.js';
import { eventually, rawClient, sleep, spawnRedis, type RedisServer } from '../helpers/servers.js';
import { api, complete, inventory, startFaultRuntime } from './site.js';

/** From Redis answering again to the runtime's next write (typically 0.1–0.3 s; 1.2 s of it is the longest reconnection delay). */
const RECOVERY_MS = 2_500;
/** The restarted Redis loads its AOF slowly (0.5 ms per key, ~2,000 keys) and answers meanwhile (LOADING), as it does with a large AOF. */
const SLOW_LOADING = ['--key-load-delay', '500', '--loading-process-events-interval-bytes', '1024'];

let server: RedisServer;
let rt: RunningRuntime | undefined;
afterEach(async () => {
  await rt?.stop();
  rt = undefined;
  await server.stop();
});

/** When Redis answers PING again (no longer LOADING). */
async function answersAgain(s: RedisServer): Promise<number> {
  const c = new Redis(s.url, { enableReadyCheck: false, maxRetriesPerRequest: 0, retryStrategy: () => 20 });
  c.on('error', () => undefined);
  try {
    return await eventually(async () => ((await c.ping().catch(() => '')) === 'PONG' ? Date.now() : undefined), 20_000, 20);
  } finally {
    c.disconnect();
  }
}

/** When the channel's counter is written past `value`. */
async function writtenPast(raw: Redis, value: number): Promise<number> {
  return eventually(async () => (Number(await raw.hget('comsrv:v1:m', '1')) > value ? Date.now() : undefined), 20_000, 20);
}

/** A client that asks a loading Redis often whether it is done (as the runtime's do). */
const probe = (s: RedisServer) => new Redis(s.url, { maxRetriesPerRequest: 1, maxLoadingRetryTime: 50, retryStrategy: () => 50 }).on('error', () => undefined);

describe('fault: Redis restarted with AOF', () => {
  it('values, site, mapping, actors and commands survive; controls work again; a slow AOF load delays the runtime no longer than it lasts', async () => {
    const aofDir = mkdtempSync(join(tmpdir(), 'voltage-aof-'));
    server = await spawnRedis({ aofDir });
    let raw = rawClient(server);
    let base: string;
    ({ rt, base } = await startFaultRuntime(server.url));
    await eventually(async () => complete(await inventory(raw), 5));
    const sent = await api(base, 'POST', '/api/v1/models/inv/controls/limit', { value: 5 });
    await eventually(async () => (await raw.hget(`command:${sent.body.commandId}`, 'status')) === 'confirmed');
    // Keys that make the restart load for a while, in the AOF's base (rewritten now).
    const junk = raw.pipeline();
    for (let i = 0; i < 2_000; i++) junk.set(`junk:${i}`, 'x');
    await junk.exec();
    await raw.bgrewriteaof();
    await eventually(
      async () => /aof_rewrite_in_progress:0/.test(await raw.info('persistence')) && !/aof_rewrite_scheduled:1/.test(await raw.info('persistence')),
    );
    const before = await inventory(raw);
    raw.disconnect();
    server.process.kill('SIGKILL');
    server = await spawnRedis({ aofDir, port: server.port, args: SLOW_LOADING });
    const restartedAt = Date.now();
    const loaded = answersAgain(server);
    raw = probe(server);
    // Straight from the AOF, as soon as it is loaded.
    const after = await inventory(raw);
    const loadedAt = await loaded;
    const wroteAt = await writtenPast(raw, after.channelValue!);
    expect(loadedAt - restartedAt).toBeGreaterThan(500); // it did load for a while
    expect(wroteAt - loadedAt).toBeLessThan(RECOVERY_MS);
    expect(after).toMatchObject({ functions: true, site: true, mappingC2m: 1, mappingM2c: 1, commandGroup: true, actors: before.actors });
    expect(after.channelValue).toBeGreaterThanOrEqual(before.channelValue!);
    expect(await raw.hget(`command:${sent.body.commandId}`, 'status')).toBe('confirmed');
    const again = await eventually(async () => {
      const r = await api(base, 'POST', '/api/v1/models/inv/controls/limit', { value: 6 });
      return r.status === 202 ? r : undefined;
    }, 5_000);
    await eventually(async () => (await raw.hget(`command:${again.body.commandId}`, 'status')) === 'confirmed', 5_000);
    await eventually(async () => Number(await raw.hget('comsrv:v1:m', '1')) > after.channelValue! + 3, 5_000);
    raw.disconnect();
  });

  it('a Redis back only after 8 s (a service manager restarting it) is written to again within the bound', async () => {
    const aofDir = mkdtempSync(join(tmpdir(), 'voltage-aof-'));
    server = await spawnRedis({ aofDir });
    let raw = rawClient(server);
    ({ rt } = await startFaultRuntime(server.url));
    await eventually(async () => complete(await inventory(raw), 5));
    raw.disconnect();
    server.process.kill('SIGKILL');
    // Back in the middle of what was a 5 s wait between attempts (attempts at ~3.1–3.7 s and ~6.3–7.6 s, then not before 11.3 s).
    await sleep(8_000);
    server = await spawnRedis({ aofDir, port: server.port });
    raw = probe(server);
    const loadedAt = await answersAgain(server);
    const value = Number(await raw.hget('comsrv:v1:m', '1'));
    const wroteAt = await writtenPast(raw, value);
    expect(wroteAt - loadedAt).toBeLessThan(RECOVERY_MS);
    raw.disconnect();
  });
});
