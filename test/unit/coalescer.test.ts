import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type CoalescerClock, TopicCoalescer } from '../../runtime/gateway/coalescer.js';

/** Fake time: timers run in order when time is advanced past them. */
class FakeClock implements CoalescerClock {
  t = 0;
  private timers: Array<{ at: number; fn: () => void; id: number }> = [];
  private nextId = 1;
  now(): number {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.nextId++;
    this.timers.push({ at: this.t + ms, fn, id });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.timers = this.timers.filter((x) => x.id !== handle);
  }
  advanceTo(t: number): void {
    for (let guard = 0; guard < 100_000; guard++) {
      this.timers.sort((a, b) => a.at - b.at || a.id - b.id);
      const next = this.timers[0];
      if (!next || next.at > t) break;
      this.timers.shift();
      this.t = next.at;
      next.fn();
    }
    this.t = t;
  }
  get pendingTimers(): number {
    return this.timers.length;
  }
}

type Values = Record<string, number>;
const merge = (a: Values, b: Values): Values => Object.assign(a, b);

function setup(intervalMs: number, burst: number) {
  const clock = new FakeClock();
  const sent: Array<{ at: number; topic: string; value: Values }> = [];
  const c = new TopicCoalescer<Values>({ intervalMs, burst }, merge, (topic, value) => sent.push({ at: clock.now(), topic, value: { ...value } }), clock);
  return { clock, sent, c };
}

describe('TopicCoalescer', () => {
  it('sends a change to a quiet topic at once', () => {
    const { clock, sent, c } = setup(100, 1);
    clock.advanceTo(5_000);
    c.offer('model/pv1', { P: 1 });
    expect(sent).toEqual([{ at: 5_000, topic: 'model/pv1', value: { P: 1 } }]);
    expect(clock.pendingTimers).toBe(0);
  });

  it('merges changes under load and sends them when the next token is due, the latest value winning', () => {
    const { clock, sent, c } = setup(100, 1);
    c.offer('t', { a: 1 });
    clock.advanceTo(10);
    c.offer('t', { a: 2, b: 1 });
    clock.advanceTo(20);
    c.offer('t', { a: 3 });
    expect(sent).toHaveLength(1);
    expect(c.waiting).toBe(1);
    clock.advanceTo(99);
    expect(sent).toHaveLength(1);
    clock.advanceTo(100);
    expect(sent).toHaveLength(2);
    expect(sent[1]).toEqual({ at: 100, topic: 't', value: { a: 3, b: 1 } });
    expect(c.waiting).toBe(0);
  });

  it('keeps topics apart: a busy topic does not delay a quiet one', () => {
    const { clock, sent, c } = setup(100, 1);
    for (let i = 0; i < 10; i++) {
      c.offer('busy', { v: i });
      clock.advanceTo(clock.t + 5);
    }
    c.offer('quiet', { v: 1 });
    expect(sent.filter((s) => s.topic === 'quiet')).toEqual([{ at: 50, topic: 'quiet', value: { v: 1 } }]);
  });

  it('drop forgets a topic and its waiting message', () => {
    const { clock, sent, c } = setup(100, 1);
    c.offer('t', { a: 1 });
    c.offer('t', { a: 2 });
    c.drop('t');
    clock.advanceTo(1_000);
    expect(sent).toHaveLength(1);
    expect(clock.pendingTimers).toBe(0);
  });

  it('rejects a non-positive interval and a burst below one', () => {
    expect(() => new TopicCoalescer<Values>({ intervalMs: 0, burst: 1 }, merge, () => undefined)).toThrow(/intervalMs/);
    expect(() => new TopicCoalescer<Values>({ intervalMs: 100, burst: 0 }, merge, () => undefined)).toThrow(/burst/);
  });

  it('law: at most burst + one message per interval per topic, nothing lost, and no message waits longer than an interval', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 10, max: 200 }),
        fc.integer({ min: 1, max: 4 }),
        fc.array(fc.record({ gap: fc.integer({ min: 0, max: 300 }), topic: fc.constantFrom('a', 'b', 'c'), key: fc.constantFrom('x', 'y', 'z') }), {
          minLength: 1,
          maxLength: 200,
        }),
        (intervalMs, burst, offers) => {
          const { clock, sent, c } = setup(intervalMs, burst);
          const latest = new Map<string, number>(); // topic/key → last value offered
          const offered: Array<{ at: number; topic: string; key: string; seq: number }> = [];
          let seq = 0;
          for (const o of offers) {
            clock.advanceTo(clock.t + o.gap);
            seq += 1;
            latest.set(`${o.topic}/${o.key}`, seq);
            offered.push({ at: clock.t, topic: o.topic, key: o.key, seq });
            c.offer(o.topic, { [o.key]: seq });
          }
          const end = clock.t;
          clock.advanceTo(end + intervalMs * 2);
          expect(c.waiting).toBe(0);
          for (const topic of ['a', 'b', 'c']) {
            const mine = sent.filter((s) => s.topic === topic);
            // Rate: over any window of length W, at most burst + W / interval messages.
            for (let i = 0; i < mine.length; i++) {
              for (let j = i; j < mine.length; j++) {
                const w = mine[j]!.at - mine[i]!.at;
                expect(j - i + 1).toBeLessThanOrEqual(burst + Math.floor(w / intervalMs + 1e-9));
              }
            }
            // Nothing lost: the last message holding each key holds its latest value.
            for (const key of ['x', 'y', 'z']) {
              const want = latest.get(`${topic}/${key}`);
              if (want === undefined) continue;
              const last = mine.filter((s) => key in s.value).at(-1);
              expect(last?.value[key]).toBe(want);
            }
          }
          // Latency: each offer goes out (or is superseded by a later value of its key) within one interval.
          for (const o of offered) {
            const out = sent.find((s) => s.topic === o.topic && s.at >= o.at && (s.value[o.key] ?? 0) >= o.seq);
            expect(out).toBeDefined();
            expect(out!.at - o.at).toBeLessThanOrEqual(intervalMs);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
