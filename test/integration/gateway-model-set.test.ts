/**
 * The gateway reads model values from the channel notifications that carry them, and subscribes
 * to a model's own notifications only for what no channel carries. A value written with
 * `model_set` (a rule's `set` action, or any writer of a measurement no channel feeds) on a
 * model without calculations reaches the REST API and the WebSocket feed all the same.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { loadConfig } from '../../runtime/config/load.js';
import { sha256 } from '../../runtime/gateway/http.js';
import type { VoltageRedis } from '../../runtime/redis/voltageRedis.js';
import { startRuntime, type RunningRuntime } from '../../runtime/runtime.js';
import { eventually, quietLog, spawnRedis, wrapper, writeSite, type RedisServer } from '../helpers/servers.js';

let server: RedisServer;
let rt: RunningRuntime;
let bus: VoltageRedis;
let port = 0;
const token = 'v-token';

beforeAll(async () => {
  server = await spawnRedis();
  bus = wrapper(server);
  const site = loadConfig(
    writeSite({
      'site.yaml': `gateway:
  port: 0
  tokens:
    - { name: vera, role: viewer, sha256: ${sha256(token)} }
channels:
  - id: v1
    protocol: virtual
    pollMs: 50
    points:
      - { type: m, id: 1, name: P, sim: { kind: constant, value: 12 } }
models:
  - id: inv
    measurements: { P: {}, mode: {} }
    mapping: { P: "v1:m:1" }
`,
    }),
  );
  rt = await startRuntime(site, { redisUrl: server.url, log: quietLog });
  port = await eventually(() => rt.gatewayPort());
});
afterAll(async () => {
  await rt.stop();
  await bus.close();
  await server.stop();
});

async function modelValue(name: string): Promise<number | null | undefined> {
  const r = await fetch(`http://127.0.0.1:${port}/api/v1/models/inv`, { headers: { authorization: `Bearer ${token}` } });
  const body = (await r.json()) as { values?: { name: string; value: number | null }[] };
  return body.values?.find((v) => v.name === name)?.value;
}

describe('gateway: model values no channel carries', () => {
  it('a value set with model_set on a model without calculations reaches GET /api/v1/models/{id} and the model/* feed', async () => {
    await eventually(async () => (await modelValue('P')) === 12);
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws?token=${token}`);
    const seen: number[] = [];
    ws.on('message', (data) => {
      const msg = JSON.parse(data.toString()) as { topic?: string; values?: Record<string, number | null> };
      const v = msg.topic === 'model/inv' ? msg.values?.mode : undefined;
      if (typeof v === 'number') seen.push(v);
    });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    ws.send(JSON.stringify({ op: 'subscribe', topics: ['model/inv'] }));
    await new Promise((r) => setTimeout(r, 300));
    await bus.telemetry.modelSet('inv', Date.now(), [{ name: 'mode', value: 3, quality: 'good' }]);
    expect(await eventually(async () => ((await modelValue('mode')) === 3 ? 3 : undefined), 3_000)).toBe(3);
    await eventually(() => seen.includes(3), 3_000).catch(() => undefined);
    ws.close();
    expect(seen).toContain(3);
  });
});
