/**
 * Fault: FLUSHALL on the site's Redis while the runtime runs.
 * Kept: everything the runtime owns comes back within 2 s (functions, site,
 * both mappings, model values, actor records, the command group), said once in
 * the log; controls work again. Lost: the command records Redis held — a
 * command accepted before says `lost`, never pending forever.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningRuntime } from '../../runtime/runtime.js';
import { statusReport } from '../../runtime/status.js';
import { eventually, sleep, usePrivateRedis } from '../helpers/servers.js';
import { api, capturedLog, complete, inventory, startFaultRuntime } from './site.js';

const t = usePrivateRedis();
let rt: RunningRuntime;
let base: string;
const { log, lines } = capturedLog();

beforeAll(async () => {
  ({ rt, base } = await startFaultRuntime(t.server.url, undefined, log));
  await eventually(async () => complete(await inventory(t.raw), 5));
});
afterAll(async () => {
  await rt.stop();
});

describe('fault: FLUSHALL', () => {
  it('everything the runtime owns is back within 2 s, logged once; a command from before says lost', async () => {
    const sent = await api(base, 'POST', '/api/v1/models/inv/controls/limit', { value: 7 });
    expect(sent.status).toBe(202);
    const actors = await t.raw.scard('actors');
    await t.raw.flushall();
    const flushedAt = Date.now();
    await eventually(async () => complete(await inventory(t.raw), actors), 2_000, 20);
    expect(Date.now() - flushedAt).toBeLessThan(2_000);
    await sleep(500); // a second restoration would log again
    expect(lines.filter((l) => /Redis lost/.test(l.msg)).length).toBe(1);
    // The command's record went with the data: it is reported lost, not pending and not unknown.
    const lost = await api(base, 'GET', `/api/v1/commands/${sent.body.commandId}`);
    expect(lost.status).toBe(200);
    expect(lost.body.status).toBe('lost');
    // Controls work again: the consumer group was recreated.
    const again = await api(base, 'POST', '/api/v1/models/inv/controls/limit', { value: 9 });
    expect(again.status).toBe(202);
    // A new id (the counter went with the data too): the one from before still reads lost.
    expect(again.body.commandId).not.toBe(sent.body.commandId);
    await eventually(async () => (await api(base, 'GET', `/api/v1/commands/${again.body.commandId}`)).body.status === 'confirmed', 3_000);
    expect((await api(base, 'GET', `/api/v1/commands/${sent.body.commandId}`)).body.status).toBe('lost');
    // The truth meanwhile: the runtime is up, /health is ok.
    expect((await statusReport(t.bus)).runtimeUp).toBe(true);
    expect((await api(base, 'GET', '/health')).body.status).toBe('ok');
  });
});
