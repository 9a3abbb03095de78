/**
 * The Functions library: the Lua modules of lua/ load as ONE library `voltage`
 * with ONE version, every module's Functions are registered, and loading it
 * again (at start, or after Redis lost it) changes nothing.
 */
import { readFileSync } from 'node:fs';
import { beforeEach, describe, expect, it } from 'vitest';
import { usePrivateRedis } from '../helpers/servers.js';
import { LIBRARY_NAME, LIBRARY_SOURCE, LIBRARY_VERSION, LUA_FUNCTIONS, LUA_MODULES } from '../../runtime/redis/library.js';

const t = usePrivateRedis();
beforeEach(async () => {
  await t.raw.flushall();
  await t.raw.call('FUNCTION', 'FLUSH');
});

/** FUNCTION LIST as library name → its Function names, sorted. */
async function libraries(): Promise<Map<string, string[]>> {
  const reply = (await t.raw.call('FUNCTION', 'LIST')) as unknown[][];
  const out = new Map<string, string[]>();
  for (const lib of reply) {
    const name = lib[lib.indexOf('library_name') + 1] as string;
    const fns = lib[lib.indexOf('functions') + 1] as unknown[][];
    out.set(name, fns.map((f) => f[f.indexOf('name') + 1] as string).sort());
  }
  return out;
}

const allFunctions = LUA_MODULES.flatMap((m) => LUA_FUNCTIONS[m]).sort();

describe('the voltage library', () => {
  it('is built from every module in LUA_MODULES with its generated parts filled in', () => {
    expect(LIBRARY_SOURCE.startsWith(`#!lua name=${LIBRARY_NAME}\n`)).toBe(true);
    expect(LIBRARY_SOURCE).not.toContain('--@@');
    expect(LIBRARY_SOURCE).toContain(`local LIB_VERSION = '${LIBRARY_VERSION}'`);
    for (const m of LUA_MODULES) {
      const text = readFileSync(new URL(`../../lua/${m}.lua`, import.meta.url), 'utf8');
      for (const part of text.split(/^local (?:LIB_VERSION|COMMAND_TRANSITIONS|ALARM_TRANSITIONS|ALARM_ACTIVE|ALARM_INITIAL) = .*$/m))
        expect(LIBRARY_SOURCE, m).toContain(part);
      for (const fn of LUA_FUNCTIONS[m]) expect(text, `${m} registers ${fn}`).toMatch(new RegExp(`register_function(\\('|\\{ function_name = ')${fn}'`));
    }
  });

  it("loads as one library with the expected version and every module's Functions", async () => {
    await t.bus.core.loadLibrary();
    expect(await t.bus.site.libraryVersion()).toBe(LIBRARY_VERSION);
    expect(LIBRARY_VERSION).toBe('34');
    expect(await libraries()).toEqual(new Map([[LIBRARY_NAME, allFunctions]]));
  });

  it('loads again idempotently: same version, same Functions, the site and its data untouched', async () => {
    await t.bus.site.load({ site: 't', json: '{"site":"t"}', mapping: new Map([['1001:m:1', 'pv1:P']]), controls: new Map(), models: ['pv1'] });
    await t.bus.telemetry.c2m('1001', 1_700_000_000_000, [{ type: 'm', id: 1, value: 2, quality: 'good' }]);
    for (let i = 0; i < 3; i++) await t.bus.core.loadLibrary();
    expect(await libraries()).toEqual(new Map([[LIBRARY_NAME, allFunctions]]));
    expect(await t.bus.site.libraryVersion()).toBe(LIBRARY_VERSION);
    expect(await t.raw.hget('mapping:c2m', '1001:m:1')).toBe('pv1:P');
    expect(await t.raw.hget('modsrv:pv1:measurement', 'P')).toBe('2.000000');
    expect(t.bus.site.restorations).toBe(0);
  });
});
