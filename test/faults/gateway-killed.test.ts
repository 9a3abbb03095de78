/**
 * Fault: the gateway's process killed with kill -9 (the long form is in
 * test/integration/gateway-process.test.ts).
 * Kept: the runtime and its channels (they never stop writing); the gateway
 * actor starts a new process and the API answers again, within SERVES_AGAIN_MS.
 * Lost: the requests in flight at the moment of the kill.
 */
import { describe, expect, it } from 'vitest';
import { eventually } from '../helpers/servers.js';
import { api, useFaultRuntime } from './site.js';

/** From the kill to /health answering 200 from a new process. */
const SERVES_AGAIN_MS = 5_000;

const f = useFaultRuntime();
const t = f.t;

const gatewayPid = async () => JSON.parse((await t.raw.hget('actor:gateway', 'context')) ?? '{}').pid as number | undefined;

describe('fault: the gateway process killed', () => {
  it('is started again and answers within the bound; the channels never stop writing', async () => {
    const pid = await eventually(gatewayPid);
    const killedAt = Date.now();
    process.kill(pid, 'SIGKILL');
    const before = Number(await t.raw.hget('comsrv:v1:m', '1'));
    const newPid = await eventually(async () => {
      const p = await gatewayPid();
      return typeof p === 'number' && p !== pid ? p : undefined;
    }, 10_000);
    expect(newPid).toBeGreaterThan(0);
    const port = await eventually(() => f.rt.gatewayPort());
    f.base = `http://127.0.0.1:${port}`;
    await eventually(async () => (await api(f.base, 'GET', '/health')).status === 200, 10_000);
    // ~1.5 s here: the restart's backoff (0.2 s), Node starting the process (~0.7 s), the server built and listening.
    expect(Date.now() - killedAt).toBeLessThan(SERVES_AGAIN_MS);
    expect(Number(await t.raw.hget('comsrv:v1:m', '1'))).toBeGreaterThan(before);
    expect(await t.raw.hget('actor:root', 'status')).toBe('running');
  });
});
