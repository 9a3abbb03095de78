/**
 * Fault: the runtime process killed with kill -9 just after a command was
 * accepted (before or while its channel writes it).
 * Kept: the command: after a restart it ends in a clear state — confirmed if
 * it can still be applied, timeout if its deadline passed meanwhile (a late
 * setpoint is never applied) — never pending forever; a command sent while the
 * runtime was down is executed after the restart. Lost: nothing accepted.
 */
import { describe, expect, it } from 'vitest';
import { eventually, writeSite } from '../helpers/servers.js';
import { commandResult, privateRedisSuite } from '../helpers/suite.js';
import { SITE_YAML, spawnRuntime } from './site.js';

const t = privateRedisSuite();
const dir = writeSite({ 'site.yaml': SITE_YAML.replace(/^gateway:\n {2}port: 0\n/, '') });

const start = () => spawnRuntime(t, dir);
const groupReady = () =>
  eventually(async () => {
    try {
      return ((await t.raw.xinfo('GROUPS', 'cmd:v1')) as unknown[]).length > 0;
    } catch {
      return false;
    }
  }, 15_000);

describe('fault: the runtime killed with kill -9 in the middle of a command', () => {
  it('after the restart the command ends confirmed or timeout, never pending; one sent while down is executed', async () => {
    const first = start();
    await groupReady();
    await eventually(async () => (await t.raw.hget('actor:channel/v1', 'status')) === 'running', 15_000);
    const id = await t.bus.commands.m2c('inv', 'limit', 5, 'test', 1_000);
    first.kill('SIGKILL');
    const whileDown = await t.bus.commands.m2c('inv', 'limit', 6, 'test', 30_000);
    await new Promise((r) => setTimeout(r, 1_200)); // the first one's deadline passes while the runtime is down
    start();
    const c = await commandResult(t.bus, id, 15_000);
    expect(['confirmed', 'timeout']).toContain(c.status);
    if (c.status === 'timeout') expect(c.message).toMatch(/expired before it could be written/);
    expect((await commandResult(t.bus, whileDown, 15_000)).status).toBe('confirmed');
    // The written value reaches the channel hash with the next poll (cmd_result records the read-back on the command).
    await eventually(async () => (await t.raw.hget('comsrv:v1:a', '1')) === '6.000000', 5_000);
  });
});
