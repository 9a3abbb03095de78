/** The machines with no Redis, no socket, no real clock: implementations are provided here. */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createActor, fromPromise } from 'xstate';
import { channelMachine } from '../../machines/channelMachine.js';
import { modelMachine, type ModelUpdate } from '../../machines/modelMachine.js';
import { decode } from '../../actors/channel/ChannelActor.js';
import { claimSlot, delayToSlot, newGrid, pollPhases, staggerMs } from '../../actors/channel/pollGrid.js';
import fc from 'fast-check';
import { parseUpdate, worstQuality } from '../../actors/model/ModelActor.js';
import { DeviceError } from '../../actors/channel/device.js';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('channelMachine', () => {
  it('counts what its poll loop reports, reconnects after a transient error, and fails on a fatal one', async () => {
    const script: Array<'link' | 'fatal'> = ['link', 'fatal'];
    let connects = 0;
    const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));
    const machine = channelMachine.provide({
      actors: {
        connect: fromPromise(async () => {
          connects += 1;
        }),
        polls: fromPromise(async ({ input }) => {
          await wait(100);
          input.parent.send({ type: 'channel.polled', polls: 2, missed: 1, bad: 3, commands: 1, lastPollAt: 5 });
          await wait(100);
          if (script.shift() === 'link') throw new DeviceError('LINK_DOWN', 'gone');
          throw new DeviceError('DEVICE_CRASH', 'dead');
        }),
      },
      delays: { reconnectDelay: 500 },
    });
    const errors: unknown[] = [];
    const actor = createActor(machine, { input: { channelId: 'c', pollMs: 100 } });
    actor.subscribe({ error: (e) => errors.push(e) });
    actor.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(actor.getSnapshot().value).toBe('polling');
    expect(actor.getSnapshot().context.polls).toBe(0);
    await vi.advanceTimersByTimeAsync(100);
    expect(actor.getSnapshot().context).toMatchObject({ polls: 2, missedPolls: 1, badPoints: 3, commands: 1, lastPollAt: 5 });
    await vi.advanceTimersByTimeAsync(100);
    expect(actor.getSnapshot().value).toBe('reconnecting');
    expect(actor.getSnapshot().context).toMatchObject({ linkErrors: 1, lastError: 'gone' });
    await vi.advanceTimersByTimeAsync(500);
    expect(connects).toBe(2);
    expect(actor.getSnapshot().value).toBe('polling');
    expect(actor.getSnapshot().context.reconnectAttempt).toBe(1);
    await vi.advanceTimersByTimeAsync(100);
    expect(actor.getSnapshot().context).toMatchObject({ polls: 4, reconnectAttempt: 0 });
    await vi.advanceTimersByTimeAsync(100);
    expect(actor.getSnapshot().status).toBe('error');
    expect((errors[0] as Error).message).toBe('dead');
  });
});

describe('modelMachine', () => {
  it('coalesces updates that arrive during a calculation into one more calculation', async () => {
    let calcs = 0;
    const applied: ModelUpdate[] = [];
    let release: () => void = () => undefined;
    const machine = modelMachine.provide({
      actors: {
        load: fromPromise(async (): Promise<void> => undefined),
        calculate: fromPromise(async () => {
          calcs += 1;
          await new Promise<void>((r) => {
            release = r;
          });
          return 1;
        }),
      },
      actions: {
        applyUpdate: (_, p) => {
          applied.push(p.update);
        },
      },
    });
    const actor = createActor(machine, { input: { modelId: 'm' } });
    actor.subscribe({ error: () => undefined });
    actor.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(calcs).toBe(1);
    const u = (n: number): ModelUpdate => ({ type: 'model.update', source: 'm', ts: n, values: { P: n }, quality: undefined, origin: 'c2m' });
    for (let i = 1; i <= 5; i++) actor.send(u(i));
    release();
    await vi.advanceTimersByTimeAsync(0);
    expect(applied).toHaveLength(5);
    expect(calcs).toBe(2);
    release();
    await vi.advanceTimersByTimeAsync(0);
    expect(calcs).toBe(2);
    expect(actor.getSnapshot().value).toEqual({ ready: 'idle' });
    expect(actor.getSnapshot().context).toMatchObject({ updates: 5, calculations: 2 });
  });

  it('retries a calculation whose commit failed transiently, after its delay', async () => {
    let calls = 0;
    const machine = modelMachine.provide({
      actors: {
        load: fromPromise(async (): Promise<void> => undefined),
        calculate: fromPromise(async () => {
          calls += 1;
          if (calls === 1) throw Object.assign(new Error('redis busy'), { transient: true });
          return 1;
        }),
      },
      delays: { retryDelay: 300 },
    });
    const actor = createActor(machine, { input: { modelId: 'm' } });
    actor.subscribe({ error: () => undefined });
    actor.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(actor.getSnapshot().value).toEqual({ ready: 'retrying' });
    await vi.advanceTimersByTimeAsync(300);
    expect(calls).toBe(2);
    expect(actor.getSnapshot().context).toMatchObject({ errors: 1, lastError: 'redis busy' });
  });
});

describe('decoding and notifications', () => {
  const point = { type: 'm' as const, id: 1, scale: 0.1, offset: 2, deadband: 0 };
  it('scales numbers and marks what is not a number as bad', () => {
    expect(decode(100, point)).toEqual({ value: 12, quality: 'good' });
    expect(decode('ERR', point)).toEqual({ value: null, quality: 'bad' });
    expect(decode(Number.NaN, point)).toEqual({ value: null, quality: 'bad' });
    expect(decode(Number.POSITIVE_INFINITY, point)).toEqual({ value: null, quality: 'bad' });
    expect(decode(1e308, { ...point, scale: 1e10 })).toEqual({ value: null, quality: 'bad' }); // overflows when scaled
    expect(decode({ quality: 'comm-failure' }, point)).toEqual({ value: null, quality: 'comm-failure' });
  });

  it('parses update notifications and rejects malformed ones', () => {
    expect(parseUpdate('pv1', '{"ts":5,"src":"c2m","v":{"P":1},"q":{"Q":"bad"}}')).toEqual({
      type: 'model.update',
      source: 'pv1',
      ts: 5,
      values: { P: 1 },
      quality: { Q: 'bad' },
      origin: 'c2m',
    });
    expect(parseUpdate('pv1', 'not json')).toBeUndefined();
    expect(parseUpdate('pv1', '{"ts":"x","src":"c2m"}')).toBeUndefined();
    expect(parseUpdate('pv1', '[1]')).toBeUndefined();
  });

  it('staggers channels across their poll interval, the same way every time', () => {
    const offsets = Array.from({ length: 100 }, (_, i) => staggerMs(`ch${i}`, 1000));
    expect(offsets.every((o) => o >= 0 && o < 1000)).toBe(true);
    expect(staggerMs('ch1', 1000)).toBe(offsets[1]);
    // spread: every tenth of the interval holds some channel
    expect(new Set(offsets.map((o) => Math.floor(o / 100))).size).toBe(10);
  });

  it('property: a grid is anchored on the clock, so channels of one phase poll together whenever each started', () => {
    fc.assert(
      fc.property(fc.integer({ min: 10, max: 2000 }), fc.nat({ max: 1e9 }), fc.nat({ max: 1e9 }), fc.nat({ max: 5000 }), (pollMs, t1, t2, phase0) => {
        const phase = phase0 % pollMs;
        const a = newGrid('a', pollMs, t1, phase);
        const b = newGrid('b', pollMs, t2, phase);
        expect(a.nextDueAt).toBeGreaterThanOrEqual(t1);
        expect(a.nextDueAt - t1).toBeLessThan(pollMs);
        expect((((a.nextDueAt - phase) % pollMs) + pollMs) % pollMs).toBe(0);
        expect((((a.nextDueAt - b.nextDueAt) % pollMs) + pollMs) % pollMs).toBe(0);
      }),
      { numRuns: 300 },
    );
  });

  it('property: poll phases hold every channel, group a period into phases of at most the bound (or one channel), evenly spread', () => {
    const channel = fc.record({ pollMs: fc.constantFrom(100, 250, 1000), n: fc.integer({ min: 1, max: 3000 }) });
    fc.assert(
      fc.property(fc.array(channel, { minLength: 1, maxLength: 60 }), fc.integer({ min: 100, max: 10_000 }), (specs, bound) => {
        const channels = specs.map((s, i) => ({ id: `ch${i}`, pollMs: s.pollMs, points: new Array<number>(s.n).fill(0) }));
        const phases = pollPhases(channels, bound);
        expect(phases.size).toBe(channels.length);
        for (const pollMs of new Set(channels.map((c) => c.pollMs))) {
          const list = channels.filter((c) => c.pollMs === pollMs);
          const total = list.reduce((n, c) => n + c.points.length, 0);
          const perPhase = new Map<number, number[]>();
          for (const c of list) perPhase.set(phases.get(c.id)!, [...(perPhase.get(phases.get(c.id)!) ?? []), c.points.length]);
          for (const [phase, sizes] of perPhase) {
            expect(phase).toBeGreaterThanOrEqual(0);
            expect(phase).toBeLessThan(pollMs);
            // greedy balance: a phase is over the bound only by its last channel, or by one large channel
            const sum = sizes.reduce((a, b) => a + b, 0);
            if (sizes.length > 1) expect(sum - Math.min(...sizes)).toBeLessThanOrEqual(Math.max(bound, Math.ceil(total / perPhase.size)) + Math.max(...sizes));
          }
          // as few phases as the bound allows
          expect(perPhase.size).toBeLessThanOrEqual(Math.min(list.length, Math.max(1, Math.ceil(total / bound))));
        }
      }),
      { numRuns: 200 },
    );
    // a small site polls in one phase; groupPoints 0 keeps the spread by id
    const small = Array.from({ length: 10 }, (_, i) => ({ id: `d${i}`, pollMs: 100, points: new Array<number>(100).fill(0) }));
    expect(new Set(pollPhases(small, 2_000).values())).toEqual(new Set([0]));
    expect([...pollPhases(small, 0)].every(([id, p]) => p === staggerMs(id, 100))).toBe(true);
    // 100 channels of 1,000 points under a 2,000-point bound: 50 phases of 2 channels, 20 ms apart in a 1 s period
    const big = Array.from({ length: 100 }, (_, i) => ({ id: `c${i}`, pollMs: 1000, points: new Array<number>(1000).fill(0) }));
    const counts = new Map<number, number>();
    for (const p of pollPhases(big, 2_000).values()) counts.set(p, (counts.get(p) ?? 0) + 1);
    expect(counts.size).toBe(50);
    expect([...counts.values()].every((n) => n === 2)).toBe(true);
    expect([...counts.keys()].sort((a, b) => a - b).slice(0, 3)).toEqual([0, 20, 40]);
  });

  it('property: polls keep to their grid; a late poll does not shift later ones; whole missed slots are counted', () => {
    fc.assert(
      fc.property(fc.integer({ min: 10, max: 2000 }), fc.array(fc.integer({ min: 0, max: 5000 }), { maxLength: 40 }), (pollMs, delays) => {
        const grid = newGrid('ch', pollMs, 0);
        const first = grid.nextDueAt;
        let now = 0;
        let polls = 0;
        for (const extra of delays) {
          now += delayToSlot(grid, now) + extra; // the poll starts `extra` ms late
          const before = grid.nextDueAt;
          const skipped = claimSlot(grid, now);
          polls += 1;
          expect(skipped).toBe(now - before >= pollMs ? Math.floor((now - before) / pollMs) : 0);
          expect((grid.nextDueAt - first) % pollMs).toBe(0);
          expect(grid.nextDueAt).toBeGreaterThan(now);
          expect(grid.nextDueAt - now).toBeLessThanOrEqual(pollMs);
        }
        expect(grid.nextDueAt).toBe(first + (polls + grid.missed) * pollMs);
      }),
      { numRuns: 200 },
    );
  });

  it('the quality of a result is the worst of its inputs', () => {
    expect(worstQuality([])).toBe('good');
    expect(worstQuality(['good', 'stale', 'good'])).toBe('stale');
    expect(worstQuality(['bad', 'comm-failure', 'stale'])).toBe('comm-failure');
  });
});
