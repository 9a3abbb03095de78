/**
 * A resend's step committed by cloud_resend_step (lua/cloud.lua) against a
 * private Redis: what the cloud took is counted by what XDEL removed and the
 * cursor moves only from where the link expects it, so that a commit replayed
 * after its reply was lost (or ids deleted twice) never counts twice: the law
 * `refused − unparked = parked` holds whatever is replayed.
 */
import { describe, expect, it } from 'vitest';
import { ALL_SEQS } from '../../runtime/domain/cloudResend.js';
import { privateRedisSuite } from '../helpers/suite.js';

const t = privateRedisSuite();

/** Parks `n` messages as cloud.ts's `park` does (stream entry and `refused` count). */
async function park(n: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++)
    ids.push((await t.raw.xadd('cloud:web:refused', '*', 'seq', String(i + 1), 'topic', 't', 'reason', 'HTTP 422', 'payload', '{}'))!);
  await t.raw.hincrby('cloud:web:stats', 'refused', n);
  return ids;
}

const law = async () => {
  const s = await t.raw.hgetall('cloud:web:stats');
  return Number(s.refused ?? 0) - Number(s.unparked ?? 0) - (await t.raw.xlen('cloud:web:refused'));
};

describe('cloud_resend_step', () => {
  it('a step replayed (its reply lost) or naming ids already deleted counts nothing twice; the cursor moves only from where it is expected', async () => {
    const ids = await park(5);
    const p = t.bus.cloud.parked;
    const next = await p.nextRequest('web');
    expect(next).toBeUndefined();
    const id = await p.request('web', ALL_SEQS, 'test');
    const req = (await p.nextRequest('web'))!;
    await p.begin('web', req.request, req.progress, ids[4]!);
    const step = { taken: ids.slice(0, 3), refusedAgain: 0, lastRefusal: undefined, cursor: ids[2]! };
    expect(await p.step('web', id, '0-0', step)).toBe(ids[2]);
    expect(await law()).toBe(0);
    // Replayed: the cursor is elsewhere, nothing is written, the stored cursor is answered.
    expect(await p.step('web', id, '0-0', step)).toBe(ids[2]);
    expect(await law()).toBe(0);
    expect(await p.outcome('web', id)).toMatchObject({ resent: 3, refused: 0 });
    // From the expected cursor, with two ids of which one was deleted already: one counted, the refusal recorded.
    await t.raw.xdel('cloud:web:refused', ids[3]!);
    await t.raw.hincrby('cloud:web:stats', 'unparked', 1); // as another step would have counted it
    expect(await p.step('web', id, ids[2]!, { taken: [ids[3]!, ids[4]!], refusedAgain: 0, lastRefusal: 'HTTP 422: u', cursor: ids[4]! })).toBe(ids[4]);
    expect(await law()).toBe(0);
    expect(await p.outcome('web', id)).toMatchObject({ resent: 4 });
    expect(await t.raw.hget('cloud:web:stats', 'unparked')).toBe('5');
    expect(await t.raw.hget('cloud:web:stats', 'lastRefusal')).toBe('HTTP 422: u');
    expect(await p.cursor('web', id)).toBe(ids[4]);
    // A failure counted at the cursor is forgotten when the cursor moves.
    expect(await p.failed('web', id, 'x')).toBe(1);
    expect(await p.failed('web', id, 'y')).toBe(2);
    expect(await p.step('web', id, ids[4]!, { taken: [], refusedAgain: 2, lastRefusal: undefined, cursor: ids[4]! })).toBe(ids[4]);
    expect(await p.failed('web', id, 'z')).toBe(1);
    expect(await p.outcome('web', id)).toMatchObject({ refused: 2, lastError: 'z', state: 'running' });
  });
});

describe('cancel', () => {
  it('leaves no hash without a TTL: a request not begun keeps its cancel until it runs and ends (then a day), a running one its progress, an ended one whose outcome expired nothing', async () => {
    const p = t.bus.cloud.parked;
    const ids = await park(2);
    const key = (id: string) => `cloud:web:resend:${id}`;
    // Not begun: the cancel waits for the link, without a TTL (like the progress it will join).
    const first = await p.request('web', ALL_SEQS, 'test');
    await p.cancel('web', first, 'op');
    expect(await t.raw.hgetall(key(first))).toEqual({ cancel: 'op' });
    expect(await t.raw.ttl(key(first))).toBe(-1);
    const req = (await p.nextRequest('web'))!;
    expect(req.progress).toEqual({ cancel: 'op' });
    await p.begin('web', req.request, req.progress, ids[1]!);
    expect(await p.cancelledBy('web', first)).toBe('op');
    await p.finish('web', first, 'cancelled', 'cancelled by op');
    expect(await t.raw.ttl(key(first))).toBeGreaterThan(86_000);
    // Asked again of the ended one (the route's check raced its end): the outcome keeps its TTL.
    await p.cancel('web', first, 'op2');
    expect(await t.raw.hget(key(first), 'state')).toBe('cancelled');
    expect(await t.raw.ttl(key(first))).toBeGreaterThan(86_000);
    // Its outcome expired between the route's check and the write: nothing is left behind.
    await t.raw.del(key(first));
    await p.cancel('web', first, 'op3');
    expect(await t.raw.exists(key(first))).toBe(0);
    // Running (no TTL while it runs): the cancel joins its progress, which keeps no TTL until it ends.
    const second = await p.request('web', ALL_SEQS, 'test');
    const next = (await p.nextRequest('web'))!;
    expect(next.request.id).toBe(second);
    await p.begin('web', next.request, next.progress, ids[1]!);
    await p.cancel('web', second, 'op');
    expect(await t.raw.hget(key(second), 'state')).toBe('running');
    expect(await p.cancelledBy('web', second)).toBe('op');
    expect(await t.raw.ttl(key(second))).toBe(-1);
    // No key of the link's requests is left without a TTL once both ended.
    await p.finish('web', second, 'cancelled', 'cancelled by op');
    const keys = await t.raw.keys('cloud:web:resend:*');
    expect(keys).toEqual([key(second)]);
    for (const k of keys) expect(await t.raw.ttl(k)).toBeGreaterThan(86_000);
  });
});
