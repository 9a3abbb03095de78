/**
 * History: a value with no quality beside it in a c2m outbox entry is stored
 * as `good`. Is that what Redis holds? c2m writes no quality for it: the
 * point's quality stays what the channel last sent. A channel sends a value
 * only while its reading is good, and a quality whenever it changes
 * (`reportReading` in actors/channel/ChannelActor.ts, which this test calls),
 * so the quality left beside a value is always `good`. Checked against c2m on
 * a private redis-server, over random sequences of readings sent as the
 * channel sends them: after every poll, the
 * quality the history decoder gives each point is the one in the channel's
 * and the model's quality hashes.
 */
import fc from 'fast-check';
import { beforeEach, describe, expect, it } from 'vitest';
import { reportReading } from '../../actors/channel/ChannelActor.js';
import { decodeEntry } from '../../actors/history/outbox.js';
import { C2mBatch } from '../../runtime/domain/c2mBatch.js';
import type { Quality } from '../../runtime/domain/telemetry.js';
import { KEYS } from '../../runtime/redis/keys.js';
import { usePrivateRedis } from '../helpers/servers.js';

const t = usePrivateRedis();
const POINTS = [1, 2, 3];

beforeEach(async () => {
  await t.raw.flushall();
  await t.bus.site.load({
    site: 't',
    json: '{"site":"t"}',
    mapping: new Map(POINTS.map((id) => [`ch:m:${id}`, `mdl:p${id}`])),
    models: ['mdl'],
    controls: new Map(),
  });
  // The outbox is written once a consumer has made its group.
  await t.raw.xgroup('CREATE', KEYS.outbox, 'history', '0', 'MKSTREAM');
});

/** A reading: a number (good), or the quality of a point with no answer. */
const reading = fc.oneof(fc.integer({ min: -1000, max: 1000 }), fc.constantFrom<Quality>('bad', 'comm-failure'));

describe('history: the quality of a value sent without one', () => {
  it('property: is the quality c2m leaves in Redis for it (good), poll after poll', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(reading, reading, reading), { minLength: 1, maxLength: 12 }), async (polls) => {
        await t.raw.del(KEYS.channel('ch', 'm'), KEYS.qualities(KEYS.channel('ch', 'm')), KEYS.model('mdl'), KEYS.qualities(KEYS.model('mdl')));
        // What the channel last sent of each point (undefined: nothing yet).
        const sent: (Quality | undefined)[] = POINTS.map(() => undefined);
        for (const [k, readings] of polls.entries()) {
          const batch = new C2mBatch();
          readings.forEach((r, i) => {
            const quality: Quality = typeof r === 'number' ? 'good' : r;
            // The channel's own rule, the quality refreshed when it changed (no integrity refresh here).
            reportReading(batch, { type: 'm', id: POINTS[i]!, deadband: 0 }, typeof r === 'number' ? r : Number.NaN, quality, sent[i] !== quality, Number.NaN);
            sent[i] = quality;
          });
          if (batch.count === 0) continue;
          await t.bus.telemetry.c2m('ch', 1_700_000_000_000 + k, batch);
          const [entry] = (await t.raw.xrevrange(KEYS.outbox, '+', '-', 'COUNT', 1)) as Array<[string, string[]]>;
          for (const s of decodeEntry(entry![1])) {
            if (s.series.kind !== 'point') throw new Error('a channel entry gives point samples');
            const id = s.series.point;
            expect(s.quality).toBe(await t.raw.hget(KEYS.qualities(KEYS.channel('ch', 'm')), String(id)));
            expect(s.quality).toBe(await t.raw.hget(KEYS.qualities(KEYS.model('mdl')), `p${id}`));
            if (s.value !== null) expect(s.quality).toBe('good');
          }
        }
      }),
      { numRuns: 40 },
    );
  });
});
