/**
 * The cloud link's pure parts: its machine (disconnected → connecting →
 * online, backoff growing with failed attempts), the messages it builds, and
 * the seq law: whatever the connection losses, a consumer that drops seqs it
 * has seen gets every message once, in order, seq without gaps.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { createActor, fromCallback, fromPromise, waitFor } from 'xstate';
import { cloudMachine, type UplinkEvent } from '../../machines/cloudMachine.js';
import { alarmPayload, buildMessages, entryMessages, fillTopic, messagePayload, notifyPayload, planSeqs } from '../../actors/cloud/messages.js';
import { batchBody } from '../../actors/cloud/httpTransport.js';
import { refusedBy } from '../../actors/cloud/CloudLink.js';
import type { HistorySample } from '../../actors/history/outbox.js';
import { CloudDownlink, parseCommand } from '../../actors/cloud/downlink.js';
import { linkTopics } from '../../actors/cloud/messages.js';
import type { VoltageRedis } from '../../runtime/redis/voltageRedis.js';
import { quietLog } from '../helpers/servers.js';
import { RefusalLog } from '../../actors/cloud/refusals.js';
import type { Logger } from '../../runtime/logger.js';

const transient = (m: string) => Object.assign(new Error(m), { transient: true });

describe('cloudMachine', () => {
  it('connects at once, backs off after failures with growing attempts, goes online, and back to disconnected when the link is lost', async () => {
    let tries = 0;
    const delays: number[] = [];
    let lose: ((e: UplinkEvent) => void) | undefined;
    const machine = cloudMachine.provide({
      actors: {
        connect: fromPromise(async () => {
          tries += 1;
          if (tries <= 2) throw transient(`refused ${tries}`);
        }),
        uplink: fromCallback<UplinkEvent, { link: string }>(({ sendBack }) => {
          lose = sendBack;
          return () => undefined;
        }),
      },
      delays: {
        retryDelay: ({ context }) => {
          delays.push(context.attempts);
          return context.attempts === 0 ? 0 : 1;
        },
      },
    });
    const actor = createActor(machine, { input: { link: 'a' } }).start();
    const online = await waitFor(actor, (s) => s.matches('online'), { timeout: 1_000 });
    expect(online.context).toMatchObject({ attempts: 0, failures: 2, connects: 1, lastError: null });
    expect(delays).toEqual([0, 1, 2]);
    lose!({ type: 'LOST', error: 'broker gone' });
    expect(actor.getSnapshot().value).toBe('disconnected');
    expect(actor.getSnapshot().context).toMatchObject({ attempts: 1, failures: 3, lastError: 'broker gone' });
    await waitFor(actor, (s) => s.matches('online'), { timeout: 1_000 });
    actor.send({ type: 'PROGRESS', stats: { published: 5, entries: 5, resent: 1, refused: 0, lastRefusal: null, dropped: 2, notTaken: 0, lag: 7, seq: 5 } });
    expect(actor.getSnapshot().context).toMatchObject({ published: 5, dropped: 2, lag: 7, seq: 5 });
    actor.stop();
  });

  it('fails (for its supervisor) on an error that is not transient', async () => {
    const machine = cloudMachine.provide({
      actors: {
        connect: fromPromise<void, { link: string }>(async () => {
          throw new Error('a bug');
        }),
      },
      delays: { retryDelay: 0 },
    });
    const actor = createActor(machine, { input: { link: 'a' } });
    const failed = new Promise<unknown>((resolve) => actor.subscribe({ error: resolve }));
    actor.start();
    expect(String(await failed)).toContain('a bug');
    expect(actor.getSnapshot().status).toBe('error');
  });
});

const point = (channel: string, p: number, value: number | null, quality: HistorySample['quality'] = 'good'): HistorySample => ({
  series: { kind: 'point', channel, type: 'm', point: p },
  ts: 1000,
  value,
  quality,
});

describe('messages', () => {
  const mapping = new Map([
    ['c1:m:1', { model: 'pv', name: 'P' }],
    ['c1:m:2', { model: 'pv', name: 'Q' }],
    ['c1:m:3', { model: 'meter', name: 'E' }],
  ]);

  it('one message per model per entry, in the order the models first appear; unmapped points left out; quality only where not good', () => {
    const msgs = buildMessages([point('c1', 3, 7), point('c1', 1, 1.5), point('c1', 9, 1), point('c1', 2, null, 'comm-failure')], {
      mapping,
      quality: true,
      timestamps: true,
    });
    expect(msgs.map((m) => m.model)).toEqual(['meter', 'pv']);
    expect(JSON.parse(messagePayload(41, msgs[1]!, true))).toEqual({ seq: 41, ts: 1000, model: 'pv', values: { P: 1.5 }, quality: { Q: 'comm-failure' } });
    expect(JSON.parse(messagePayload(42, msgs[0]!, false))).toEqual({ seq: 42, model: 'meter', values: { E: 7 } });
  });

  it('keeps only the models asked for; calculated values go to their own model', () => {
    const calc: HistorySample = { series: { kind: 'model', model: 'site', name: 'net' }, ts: 5, value: 3, quality: 'good' };
    expect(buildMessages([point('c1', 1, 1), calc], { mapping, models: new Set(['site']), quality: true, timestamps: true }).map((m) => m.model)).toEqual([
      'site',
    ]);
  });

  it('an alarm entry is one alarm message in the same sequence; a link without alarms leaves it out', () => {
    const event = { id: 'pv.hot', event: 'raise', from: 'normal', to: 'unacknowledged', severity: 'major', active: true, version: 2 };
    const fields = ['src', 'a', 'id', 'pv.hot', 'ts', '1234', 'p', JSON.stringify(event)];
    const [m] = entryMessages(fields, { mapping, quality: true, timestamps: true, alarms: true });
    expect(m?.kind).toBe('alarm');
    if (m?.kind !== 'alarm') return;
    const { id: _, ...rest } = event;
    expect(JSON.parse(alarmPayload(7, m.a, true))).toEqual({ seq: 7, ts: 1234, alarm: 'pv.hot', ...rest });
    expect(entryMessages(fields, { mapping, quality: true, timestamps: true, alarms: false })).toEqual([]);
    const data = entryMessages(['src', 'c', 'id', 'c1', 'ts', '5', 'p', 'm 1 2.5 '], { mapping, quality: true, timestamps: true, alarms: true });
    expect(data).toMatchObject([{ kind: 'data', m: { model: 'pv', values: { P: 2.5 } } }]);
  });

  it("a rule's notify entry is one notify message on {prefix}/notify, in the same sequence", () => {
    const event = { rule: 'peak', severity: 'warning', message: 'importing 41 kW', time: 1234, execution: '1-0' };
    const fields = ['src', 'r', 'id', 'peak', 'ts', '1234', 'p', JSON.stringify(event)];
    const [m] = entryMessages(fields, { mapping, quality: true, timestamps: true, alarms: false });
    expect(m?.kind).toBe('notify');
    if (m?.kind !== 'notify') return;
    const { rule: _, ...rest } = event;
    expect(JSON.parse(notifyPayload(8, m.n, true))).toEqual({ seq: 8, ts: 1234, rule: 'peak', ...rest });
    expect(JSON.parse(notifyPayload(8, m.n, false))).toEqual({ seq: 8, rule: 'peak', ...rest });
    expect(linkTopics('voltage/{site}', 's1').notify).toBe('voltage/s1/notify');
  });

  it('an HTTP batch body carries the messages in order, each with its kind', () => {
    const body = batchBody('s1', 'web', [
      { kind: 'data', model: 'pv', channel: 'c1', payload: '{"seq":1,"model":"pv","values":{"P":1}}' },
      { kind: 'alarm', model: '', channel: '', payload: '{"seq":2,"alarm":"pv.hot"}' },
    ]);
    expect(JSON.parse(body)).toEqual({
      site: 's1',
      link: 'web',
      messages: [
        { kind: 'data', seq: 1, model: 'pv', values: { P: 1 } },
        { kind: 'alarm', seq: 2, alarm: 'pv.hot' },
      ],
    });
  });

  it('refuse-new ranges: after from, up to to (open while to is absent)', () => {
    const ranges = [
      { from: '10-0', to: '20-0', added: 0 },
      { from: '30-5', added: 0 },
    ];
    expect(['10-0', '10-1', '20-0', '20-1', '30-5', '30-6', '99-0'].map((id) => refusedBy(ranges, id))).toEqual([false, true, true, false, false, true, true]);
  });

  it('fills topic templates', () => {
    expect(fillTopic('{prefix}/data/{model}', { prefix: 'voltage/s1', model: 'pv', site: 's1', channel: 'c1' })).toBe('voltage/s1/data/pv');
  });

  it('parses commands and says what is wrong with one that is not', () => {
    expect(parseCommand('{"id":"a","model":"m","name":"n","value":1}', 60_000)).toEqual({ id: 'a', model: 'm', name: 'n', value: 1, timeoutMs: 10_000 });
    expect(parseCommand('[]', 60_000)).toMatchObject({ id: 'invalid' });
    expect(parseCommand('{"id":"a/b","model":"m","name":"n","value":1}', 60_000)).toMatchObject({ id: 'invalid' });
    expect(parseCommand('{"id":"a","model":"m","name":"n","value":1,"timeoutMs":999999}', 60_000)).toMatchObject({
      id: 'a',
      error: expect.stringContaining('timeoutMs'),
    });
  });
});

describe('downlink commands', () => {
  it("are limited like an operator's: past a burst of 20, a command gets an error and is not sent", async () => {
    let sent = 0;
    const ids = new Map<string, string>();
    const bus = {
      commands: {
        m2c: async () => {
          sent += 1;
          return `c${sent}`;
        },
        command: async (id: string) => ({ id, status: 'confirmed', message: '', readback: 1 }),
        auditRejected: async () => undefined,
        claimRequest: async (key: string) => {
          const prior = ids.get(key);
          if (prior === undefined) ids.set(key, '');
          return prior;
        },
        answerRequest: async (key: string, answer: string) => void ids.set(key, answer),
      },
    } as unknown as VoltageRedis;
    const results: Array<{ topic: string; body: { status: string } }> = [];
    const topics = linkTopics('voltage/{site}', 's');
    const d = new CloudDownlink(
      bus,
      { link: 'a', commands: true, read: true, maxTimeoutMs: 60_000 },
      topics,
      async (topic, p) => {
        results.push({ topic, body: JSON.parse(p) });
      },
      quietLog,
    );
    for (let i = 0; i < 25; i++) await d.handle(topics.cmd, JSON.stringify({ id: `k${i}`, model: 'm', name: 'n', value: 1 }));
    expect(sent).toBe(20);
    expect(results.filter((r) => r.body.status === 'confirmed')).toHaveLength(20);
    expect(results.filter((r) => r.body.status === 'error')).toHaveLength(5);
  });
});

describe('the seq law', () => {
  it('whatever the losses, dropping seen seqs leaves 1, 2, 3, … once each, in entry order', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 40 }), // messages per entry
        fc.array(fc.nat(), { maxLength: 8 }), // where connections are lost (a count of PUBACKs before the loss)
        fc.integer({ min: 1, max: 6 }), // batch size
        (counts, losses, batch) => {
          // Redis: the group's unacknowledged entries and the inflight records; the link's last seq.
          const acked = new Set<number>();
          const inflight = new Map<number, string>();
          let lastSeq = 0;
          let cursor = 0; // next entry never delivered
          const received: number[] = [];
          const lossPlan = [...losses];
          let budget = lossPlan.shift();
          let pendingFirst = true;
          for (let rounds = 0; rounds < 1_000 && (cursor < counts.length || acked.size < counts.length); rounds++) {
            // Pending first (in id order), then new.
            let ids = pendingFirst ? [...Array(cursor).keys()].filter((i) => !acked.has(i)).slice(0, batch) : [];
            const resend = ids.length > 0;
            if (!resend) {
              pendingFirst = false;
              ids = [...Array(Math.min(batch, counts.length - cursor)).keys()].map((k) => cursor + k);
              cursor += ids.length;
            }
            const plan = planSeqs(
              ids.map((i) => counts[i]!),
              resend ? ids.map((i) => inflight.get(i)) : [],
              lastSeq,
            );
            for (const [k, v] of plan.record) inflight.set(ids[k]!, v);
            lastSeq = plan.lastSeq;
            let lost = false;
            for (const s of plan.seqs) {
              for (let j = 0; j < s.count && !lost; j++) {
                received.push(s.first + j); // the broker got it (and the subscriber)…
                if (budget !== undefined && budget-- <= 0) lost = true; // …but its PUBACK was lost with the connection
              }
            }
            if (lost) {
              budget = lossPlan.shift();
              pendingFirst = true;
              continue;
            }
            for (const i of ids) {
              acked.add(i);
              inflight.delete(i);
            }
          }
          let max = 0;
          for (const s of received) {
            if (s <= max) continue;
            expect(s).toBe(max + 1);
            max = s;
          }
          expect(max).toBe(counts.reduce((a, b) => a + b, 0));
          expect(acked.size).toBe(counts.length);
        },
      ),
    );
  });
});

describe('refusals', () => {
  it('the log of refused messages: one line per topic and reason code a minute, with the count since the last line', () => {
    const lines: Array<Record<string, unknown>> = [];
    const log = new RefusalLog({ warn: (o: Record<string, unknown>) => lines.push(o) } as unknown as Logger);
    const r = (topic: string, reasonCode = 0x87) => ({ index: 0, topic, payload: '{"seq":1}', reasonCode });
    log.note(
      Array.from({ length: 100 }, () => r('a')),
      0,
    );
    log.note([r('a')], 59_999);
    expect(lines).toEqual([expect.objectContaining({ topic: 'a', reason: '0x87 not authorized', refused: 1 })]);
    log.note([r('a'), r('b'), r('a', 0x97)], 60_000);
    expect(lines.slice(1)).toEqual([
      expect.objectContaining({ topic: 'a', refused: 101, sinceMs: 60_000 }),
      expect.objectContaining({ topic: 'b', refused: 1 }),
      expect.objectContaining({ topic: 'a', reason: '0x97 quota exceeded', refused: 1 }),
    ]);
  });
});
