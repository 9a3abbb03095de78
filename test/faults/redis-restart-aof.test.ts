/**
 * Fault: Redis killed with kill -9 and restarted on the same port and folder
 * with appendonly yes (appendfsync always).
 * Kept: values, the site, both mappings, the actor tree, the command group,
 * and a command's record; controls work again. Lost: nothing accepted.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { RunningRuntime } from '../../runtime/runtime.js';
import { eventually, rawClient, spawnRedis, type RedisServer } from '../helpers/servers.js';
import { api, complete, inventory, startFaultRuntime } from './site.js';

let server: RedisServer;
let rt: RunningRuntime | undefined;
afterAll(async () => {
  await rt?.stop();
  await server.stop();
});

describe('fault: Redis restarted with AOF', () => {
  it('values, site, mapping, actors and commands survive; controls work again', async () => {
    const aofDir = mkdtempSync(join(tmpdir(), 'voltage-aof-'));
    server = await spawnRedis({ aofDir });
    let raw = rawClient(server);
    let base: string;
    ({ rt, base } = await startFaultRuntime(server.url));
    await eventually(async () => complete(await inventory(raw), 5));
    const sent = await api(base, 'POST', '/api/v1/models/inv/controls/limit', { value: 5 });
    await eventually(async () => (await raw.hget(`command:${sent.body.commandId}`, 'status')) === 'confirmed');
    const before = await inventory(raw);
    raw.disconnect();
    server.process.kill('SIGKILL');
    server = await spawnRedis({ aofDir, port: server.port });
    raw = rawClient(server);
    // Straight from the AOF, before the runtime wrote anything again.
    const after = await inventory(raw);
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
});
