/**
 * The rules' commits and their commands go on a second connection of the process
 * (VoltageRedis.controlConnection), so that Redis need not run them after every c2m
 * call the channels sent before them: against a private redis-server, it is one
 * connection of its own, a missing Function found there is loaded again through the
 * main core (whose restorers run), and it closes with the main one.
 */
import { describe, expect, it } from 'vitest';
import { LIBRARY_VERSION } from '../../runtime/redis/library.js';
import { eventually, usePrivateRedis, wrapper } from '../helpers/servers.js';

const t = usePrivateRedis();

const names = async (): Promise<string[]> =>
  String(await t.raw.client('LIST'))
    .split('\n')
    .flatMap((line) => /name=(\S*)/.exec(line)?.[1] ?? []);

describe('the control connection', () => {
  it('is one connection of its own, named voltage:control, opened at the first call', async () => {
    const control = t.bus.controlConnection();
    expect(t.bus.controlConnection()).toBe(control);
    expect(control.core.client).not.toBe(t.bus.core.client);
    expect(await control.actors.report('rule/a', { status: 'running' })).toBe(1);
    expect(await names()).toContain('voltage:control');
  });

  it('loads a missing library through the main core, whose restorers run, and the call goes through', async () => {
    const control = t.bus.controlConnection();
    let restored = 0;
    t.bus.core.onReload(async () => {
      restored += 1;
    });
    await t.raw.call('FUNCTION', 'FLUSH');
    expect(await control.actors.report('rule/b', { status: 'running' })).toBe(1);
    expect(restored).toBe(1);
    expect(await t.bus.site.libraryVersion()).toBe(LIBRARY_VERSION);
  });

  it('closes with the main connection', async () => {
    const bus = wrapper(t.server);
    await bus.controlConnection().actors.report('rule/c', { status: 'running' });
    expect((await names()).filter((n) => n === 'voltage:control')).toHaveLength(2);
    await bus.close();
    await eventually(async () => (await names()).filter((n) => n === 'voltage:control').length === 1, 2_000, 20);
  });
});
