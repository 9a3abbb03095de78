/**
 * Fault: Redis killed with kill -9 and restarted empty (no persistence) on the
 * same port, with a control refused during the outage.
 * Kept: within 2 s of the runtime's reconnect everything it owns is back
 * (functions, site, mappings, values, actor records, command group); controls
 * work again. Lost: the records Redis held — a command accepted before says
 * `lost`; the control sent during the outage was refused (503), not accepted.
 */
import { afterAll, describe, expect, it } from 'vitest';
import type { RunningRuntime } from '../../runtime/runtime.js';
import { eventually, rawClient, sleep, spawnRedis, type RedisServer } from '../helpers/servers.js';
import { api, complete, inventory, startFaultRuntime } from './site.js';

let server: RedisServer;
let rt: RunningRuntime | undefined;
afterAll(async () => {
  await rt?.stop();
  await server.stop();
});

describe('fault: Redis restarted without persistence', () => {
  it('everything the runtime owns is back within 2 s of the reconnect; a command from before says lost', async () => {
    server = await spawnRedis();
    let raw = rawClient(server);
    let base: string;
    ({ rt, base } = await startFaultRuntime(server.url));
    await eventually(async () => complete(await inventory(raw), 5));
    const actors = await raw.scard('actors');
    const sent = await api(base, 'POST', '/api/v1/models/inv/controls/limit', { value: 5 });
    raw.disconnect();
    server.process.kill('SIGKILL');
    await sleep(200);
    expect((await api(base, 'POST', '/api/v1/models/inv/controls/limit', { value: 8 })).status).toBe(503);
    server = await spawnRedis({ port: server.port });
    raw = rawClient(server);
    // The runtime's connection comes back after its reconnect backoff (≤ 400 ms here); from then on, 2 s.
    await eventually(async () => /name=voltage:main/.test(String(await raw.client('LIST'))), 3_000, 20);
    const reconnectedAt = Date.now();
    await eventually(async () => complete(await inventory(raw), actors), 2_000, 20);
    expect(Date.now() - reconnectedAt).toBeLessThan(2_000);
    // The gateway process reconnects on its own backoff: until then its answers are 503; then the command says lost.
    await eventually(async () => (await api(base, 'GET', `/api/v1/commands/${sent.body.commandId}`)).body.status === 'lost', 3_000, 50);
    const again = await api(base, 'POST', '/api/v1/models/inv/controls/limit', { value: 9 });
    expect(again.status).toBe(202);
    await eventually(async () => (await raw.hget(`command:${again.body.commandId}`, 'status')) === 'confirmed', 3_000);
    raw.disconnect();
  });
});
