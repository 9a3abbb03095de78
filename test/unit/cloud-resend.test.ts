/**
 * Resending parked messages, the parts without a server: the seq ranges an
 * operator may ask for (API body, CLI text) and which parked messages they
 * select, the kind a parked message is sent again as, and `voltage cloud`'s
 * arguments.
 */
import { describe, expect, it } from 'vitest';
import { RefusalLog } from '../../actors/cloud/refusals.js';
import { nextChunk, ParkedResend, parkedKind, parkedOutgoing, RESEND_CHUNK, RESEND_CHUNK_SPLIT } from '../../actors/cloud/resend.js';
import type { Refusal, UplinkTransport } from '../../actors/cloud/transport.js';
import type { ParkedEntry, ResendProgress, ResendStep } from '../../runtime/redis/cloudParked.js';
import type { VoltageRedis } from '../../runtime/redis/voltageRedis.js';
import { quietLog } from '../helpers/servers.js';
import { endedText, parseCloudArgs } from '../../runtime/cloudReport.js';
import { ALL_SEQS, inSeqRange, seqRange, seqRangeOfText, SeqRangeError } from '../../runtime/domain/cloudResend.js';

describe('seq ranges of a resend', () => {
  it('FROM-TO, FROM-, -TO and one seq; a reversed or empty range is refused with the reason', () => {
    expect(seqRangeOfText('10-20')).toEqual({ fromSeq: 10, toSeq: 20 });
    expect(seqRangeOfText('10-')).toEqual({ fromSeq: 10, toSeq: null });
    expect(seqRangeOfText('-20')).toEqual({ fromSeq: null, toSeq: 20 });
    expect(seqRangeOfText('7')).toEqual({ fromSeq: 7, toSeq: 7 });
    expect(() => seqRangeOfText('20-10')).toThrow('fromSeq 20 is after toSeq 10');
    for (const bad of ['', '-', 'a-b', '1-2-3', '0-5', '1.5-2', '5 6']) expect(() => seqRangeOfText(bad), bad).toThrow(SeqRangeError);
    expect(() => seqRange(0, null)).toThrow('fromSeq must be a whole number from 1');
    expect(() => seqRange(null, 2.5)).toThrow('toSeq must be');
  });

  it('selects by the parked seq, ends included; a message parked without a seq only by an open range', () => {
    const r = seqRange(10, 20);
    expect(['9', '10', '15', '20', '21'].map((s) => inSeqRange(s, r))).toEqual([false, true, true, true, false]);
    expect(inSeqRange('', r)).toBe(false);
    expect(inSeqRange('', ALL_SEQS)).toBe(true);
    expect(inSeqRange('3', seqRange(null, 5))).toBe(true);
    expect(inSeqRange('6', seqRange(null, 5))).toBe(false);
  });
});

describe('a parked message sent again', () => {
  it('goes as the kind its payload names (an HTTP body needs it), on the topic it was refused on, byte for byte', () => {
    expect(parkedKind('{"seq":1,"ts":5,"model":"pv1","values":{"P":1}}')).toBe('data');
    expect(parkedKind('{"seq":2,"channel":"1001","values":{"m:1":1}}')).toBe('channel');
    expect(parkedKind('{"seq":3,"ts":5,"alarm":"a.b","event":"raise","model":"x"}')).toBe('alarm');
    expect(parkedKind('{"seq":4,"ts":5,"rule":"r","severity":"warning","message":"m"}')).toBe('notify');
    expect(parkedKind('not json')).toBe('data');
    const payload = '{"seq":9,"ts":5,"model":"pv1","values":{"P":1}}';
    expect(parkedOutgoing({ id: '1-0', seq: '9', topic: 'x/data/pv1', reason: '0x87', payload })).toEqual({
      kind: 'data',
      model: '',
      channel: '',
      payload,
      topic: 'x/data/pv1',
    });
  });
});

describe('voltage cloud: its arguments', () => {
  it('lists, lists parked messages, asks for a resend of every parked message or a range, with its wait, or cancels one', () => {
    expect(parseCloudArgs(['main'], { cancel: '1733600000000-0' })).toEqual({ kind: 'cancel', link: 'main', request: '1733600000000-0' });
    expect(parseCloudArgs([], {})).toEqual({ kind: 'list', link: undefined });
    expect(parseCloudArgs(['main'], {})).toEqual({ kind: 'list', link: 'main' });
    expect(parseCloudArgs(['main'], { refused: true })).toEqual({ kind: 'refused', link: 'main', count: 20 });
    expect(parseCloudArgs(['main'], { refused: true, count: '5' })).toEqual({ kind: 'refused', link: 'main', count: 5 });
    expect(parseCloudArgs(['main'], { resend: true })).toEqual({ kind: 'resend', link: 'main', range: ALL_SEQS, timeoutMs: 60_000 });
    expect(parseCloudArgs(['main', '5-9'], { resend: true, timeout: '2000' })).toEqual({
      kind: 'resend',
      link: 'main',
      range: { fromSeq: 5, toSeq: 9 },
      timeoutMs: 2_000,
    });
  });

  it('says what is wrong: a missing link, both actions, a range without --resend, a bad range, count or timeout', () => {
    const error = (p: string[], f: Parameters<typeof parseCloudArgs>[1]) => (parseCloudArgs(p, f) as { error?: string }).error;
    expect(error([], { resend: true })).toContain('--resend needs a LINK');
    expect(error([], { refused: true })).toContain('--refused needs a LINK');
    expect(error(['main'], { refused: true, resend: true })).toContain('one at a time');
    expect(error(['main', '5-9'], {})).toContain("unexpected argument '5-9'");
    expect(error(['main', '5-9', 'x'], { resend: true })).toContain("unexpected argument 'x'");
    expect(error(['main', '9-5'], { resend: true })).toContain('fromSeq 9 is after toSeq 5');
    expect(error(['main'], { refused: true, count: '0' })).toContain('--count 0');
    expect(error(['main'], { count: '3' })).toContain('--count goes with --refused');
    expect(error(['main'], { resend: true, timeout: 'soon' })).toContain('--timeout soon');
    expect(error([], { cancel: '1-0' })).toContain('--cancel needs a LINK');
    expect(error(['main'], { cancel: '1-0', resend: true })).toContain('--resend and --cancel: one at a time');
    expect(error(['main'], { cancel: 'last' })).toContain("--cancel last: expected a request's id");
    expect(error(['main', '5-9'], { cancel: '1-0' })).toContain("unexpected argument '5-9'");
  });

  it('an ended request: done exits 0; failed (with its reason) and cancelled (by whom) exit 1, saying what stays parked', () => {
    const o = { id: '5-0', fromSeq: null, toSeq: null, who: 'otto', requestedAt: 1, resent: 2, refused: 100, finishedAt: 2 };
    expect(endedText('5-0', { ...o, state: 'done', lastError: null }, 3)).toEqual({
      code: 0,
      text: 'request 5-0: done — resent 2 (taken by the cloud, no longer parked), refused again 100 (still parked); 3 parked now\n',
    });
    const failed = endedText('5-0', { ...o, state: 'failed', lastError: 'http://x answered 500 Internal Server Error' }, 3);
    expect(failed.code).toBe(1);
    expect(failed.text).toContain('request 5-0: failed — http://x answered 500 Internal Server Error; what it had not sent stays parked; so far resent 2');
    const cancelled = endedText('5-0', { ...o, state: 'cancelled', lastError: 'cancelled by otto' }, 3);
    expect(cancelled).toMatchObject({ code: 1 });
    expect(cancelled.text).toContain('request 5-0: cancelled — cancelled by otto; what it had not sent stays parked');
  });
});

/** A link's parked stream of `n` messages and one request for all, in memory (the calls resend.ts makes). */
function fakeRedis(n: number) {
  const rows: ParkedEntry[] = Array.from({ length: n }, (_, i) => ({ id: `${i + 1}-0`, seq: String(i + 1), topic: 't', reason: 'HTTP 422', payload: '{}' }));
  const reads: number[] = [];
  let cursor = '0-0';
  const request = { id: '9-0', fromSeq: null, toSeq: null, who: 'test', requestedAt: 1 };
  const parked = {
    nextRequest: async () => ({ request, progress: {} }),
    lastId: async () => rows[rows.length - 1]!.id,
    begin: async (_l: string, r: typeof request, _p: unknown, until: string | null): Promise<ResendProgress> => ({ request: r, until, cursor: '0-0' }),
    cancelledBy: async () => null,
    after: async (_l: string, from: string, _until: string, count: number) => {
      reads.push(count);
      return rows.filter((r) => Number.parseInt(r.id, 10) > Number.parseInt(from, 10)).slice(0, count);
    },
    step: async (_l: string, _r: string, _expected: string, st: ResendStep) => {
      cursor = st.cursor;
      return cursor;
    },
    finish: async () => undefined,
    outcome: async () => undefined,
  };
  return { redis: { cloud: { parked } } as unknown as VoltageRedis, reads };
}

/** A transport whose answers are held until `answer` (each message refused when `refuse`). */
function heldTransport(splitsRefusals: boolean) {
  const held: Array<() => void> = [];
  let refuse = true;
  const transport: UplinkTransport = {
    provenByDelivery: splitsRefusals,
    splitsRefusals,
    connect: async () => undefined,
    watch: () => () => undefined,
    close: async () => undefined,
    deliver: async (batch) => ({
      acked: new Promise<readonly Refusal[]>((resolve) =>
        held.push(() => resolve(refuse ? batch.map((m, index) => ({ index, topic: 't', payload: m.payload, reasonCode: 422 })) : [])),
      ),
    }),
  };
  return {
    transport,
    answer: async (refused: boolean) => {
      refuse = refused;
      for (const h of held.splice(0)) h();
      await new Promise((r) => setTimeout(r, 0));
    },
  };
}

describe('a resend between the live batches', () => {
  it("while its slice is out, the uplink's read waits as long as usual (no busy polling); once answered, briefly again", async () => {
    const { redis } = fakeRedis(300);
    const t = heldTransport(false);
    const r = new ParkedResend(redis, redis, 'web', t.transport, new RefusalLog(quietLog), quietLog);
    expect(r.readWaitMs(500)).toBe(500); // no request yet
    await r.step(() => false);
    expect(r.active).toBe(true);
    expect(r.due()).toBe(false);
    expect(r.readWaitMs(500)).toBe(500);
    await t.answer(false);
    await r.idle();
    expect(r.due()).toBe(true);
    expect(r.readWaitMs(500)).toBeLessThan(50);
  });

  it('over a transport that splits refusals (HTTP), slices start small, grow while taken and fall back when refused whole; over MQTT, 100 each', async () => {
    const http = fakeRedis(1_000);
    const t = heldTransport(true);
    const r = new ParkedResend(http.redis, http.redis, 'web', t.transport, new RefusalLog(quietLog), quietLog);
    for (const refused of [false, false, false, true, false]) {
      await r.step(() => false);
      await t.answer(refused);
      await r.idle();
    }
    expect(http.reads).toEqual([RESEND_CHUNK_SPLIT, 32, 64, 100, RESEND_CHUNK_SPLIT]);
    const mqtt = fakeRedis(1_000);
    const m = heldTransport(false);
    const r2 = new ParkedResend(mqtt.redis, mqtt.redis, 'web', m.transport, new RefusalLog(quietLog), quietLog);
    for (const refused of [true, false]) {
      await r2.step(() => false);
      await m.answer(refused);
      await r2.idle();
    }
    expect(mqtt.reads).toEqual([RESEND_CHUNK, RESEND_CHUNK]);
    expect(nextChunk(64, 64, 3)).toBe(64);
    expect(nextChunk(64, 0, 0)).toBe(RESEND_CHUNK);
  });
});
