/**
 * The outbox's consumer groups synced with the site at load (runtime/actorKind.ts
 * syncOutboxGroups), against a private Redis: a link or backend the site no longer
 * names loses its group and its consumer's state (not a link's seq); a foreign
 * group is kept; an outbox no group reads any more is deleted, so that c2m stops
 * appending to it, and its drop count is kept.
 */
import { describe, expect, it } from 'vitest';
import { syncOutboxGroups } from '../../runtime/actorKind.js';
import { loadConfig } from '../../runtime/config/load.js';
import { KINDS } from '../../runtime/kinds.js';
import { KEYS } from '../../runtime/redis/keys.js';
import { COUNTER_SITE } from '../helpers/mqttWatch.js';
import { quietLog, writeSite } from '../helpers/servers.js';
import { privateRedisSuite } from '../helpers/suite.js';

const t = privateRedisSuite();

const site = (links: string[]) =>
  loadConfig(
    writeSite({
      'site.yaml': COUNTER_SITE,
      ...(links.length ? { 'cloud.yaml': `cloud:\n  links:\n${links.map((id) => `    - id: ${id}\n      url: "mqtt://127.0.0.1:9"\n`).join('')}` } : {}),
    }),
  );
const groups = async () => (await t.bus.telemetry.outboxStats()).groups.map((g) => g.name).sort();
const poll = (ts: number) => t.bus.telemetry.c2m('v1', ts, [{ type: 'm', id: 1, value: ts % 1000, quality: 'good' }]);

/** What a link named `id` keeps in Redis beside its group. */
async function seedLinkState(id: string): Promise<void> {
  await t.raw.hset(KEYS.cloudInflight(id), '1-0', '1 1');
  await t.raw.set(KEYS.cloudRefusing(id), '[]');
  await t.raw.hset(KEYS.cloudLast(id), 'inv.P', '1');
  await t.raw.set(KEYS.cloudSeq(id), '41');
}

describe('outbox groups synced with the site', () => {
  it('a removed link: its group and state go, its seq stays; the other link is untouched', async () => {
    await syncOutboxGroups(KINDS, site(['a', 'b']), t.bus, quietLog);
    expect(await groups()).toEqual(['cloud:a', 'cloud:b']);
    await seedLinkState('a');
    await seedLinkState('b');
    await syncOutboxGroups(KINDS, site(['b']), t.bus, quietLog);
    expect(await groups()).toEqual(['cloud:b']);
    expect(await t.raw.exists(KEYS.cloudInflight('a'), KEYS.cloudRefusing('a'), KEYS.cloudLast('a'))).toBe(0);
    expect(await t.raw.get(KEYS.cloudSeq('a'))).toBe('41');
    expect(await t.raw.exists(KEYS.cloudInflight('b'), KEYS.cloudRefusing('b'), KEYS.cloudLast('b'), KEYS.cloudSeq('b'))).toBe(4);
    expect(await t.raw.exists(KEYS.outbox)).toBe(1);
  });

  it('the last reader removed: the outbox is deleted and c2m stops appending; its drop count stays', async () => {
    await syncOutboxGroups(KINDS, site(['a']), t.bus, quietLog);
    for (let i = 0; i < 5; i++) await poll(1_700_000_000_000 + i);
    expect(await t.raw.xlen(KEYS.outbox)).toBe(5);
    await t.raw.hset(KEYS.outboxStats, 'dropped', '7');
    await syncOutboxGroups(KINDS, site([]), t.bus, quietLog);
    expect(await t.raw.exists(KEYS.outbox)).toBe(0);
    for (let i = 0; i < 5; i++) await poll(1_700_000_001_000 + i);
    expect(await t.raw.exists(KEYS.outbox)).toBe(0);
    const stats = await t.bus.telemetry.outboxStats();
    expect(stats).toMatchObject({ length: 0, bytes: 0, dropped: 7, groups: [] });
  });

  it('a foreign group keeps the outbox when the site has no reader of its own', async () => {
    await syncOutboxGroups(KINDS, site(['a']), t.bus, quietLog);
    await t.raw.xgroup('CREATE', KEYS.outbox, 'external', '$');
    await syncOutboxGroups(KINDS, site([]), t.bus, quietLog);
    expect(await groups()).toEqual(['external']);
    await poll(1_700_000_000_000);
    expect(await t.raw.xlen(KEYS.outbox)).toBe(1);
  });
});
