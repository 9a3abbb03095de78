/**
 * Fault: FUNCTION FLUSH on the site's Redis.
 * Kept: the library is loaded again at the next call and every value, the
 * site, mappings, actor records and the command group stay; writes and
 * controls go on. Lost: nothing.
 */
import { describe, expect, it } from 'vitest';
import { eventually } from '../helpers/servers.js';
import { api, complete, inventory, useFaultRuntime } from './site.js';

const f = useFaultRuntime();
const t = f.t;

describe('fault: FUNCTION FLUSH', () => {
  it('the library comes back at the next call; nothing else is touched', async () => {
    const actors = await t.raw.scard('actors');
    await t.raw.call('FUNCTION', 'FLUSH');
    const before = Number(await t.raw.hget('comsrv:v1:m', '1'));
    await eventually(async () => (await inventory(t.raw)).functions, 2_000, 20);
    const after = await inventory(t.raw);
    expect(complete(after, actors)).toBe(true);
    await eventually(async () => Number(await t.raw.hget('comsrv:v1:m', '1')) > before + 3, 2_000);
    const sent = await api(f.base, 'POST', '/api/v1/models/inv/controls/limit', { value: 4 });
    expect(sent.status).toBe(202);
    await eventually(async () => (await api(f.base, 'GET', `/api/v1/commands/${sent.body.commandId}`)).body.status === 'confirmed', 3_000);
  });
});
