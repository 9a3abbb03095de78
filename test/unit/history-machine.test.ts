/**
 * historyMachine with scripted implementations and no clock of its own: a
 * database down at start backs off and retries; a failed batch leads to
 * backoff, then the recent window is written again before anything else; so
 * is a batch that found the database restarted with no failure; a full batch drains until a short one; a bug (not transient) fails the actor;
 * each backoff asks the writer to prepare the backlog (prepareBacklog).
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createActor, fromPromise } from 'xstate';
import { historyMachine, type BatchMode, type BatchResult } from '../../machines/historyMachine.js';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

class Outage extends Error {
  readonly transient = true;
}

type Step = BatchResult | 'down' | 'bug';
const batch = (entries: number, full = false): BatchResult => ({ entries, samples: entries * 2, skipped: 0, full });

function run(script: { connects: Array<'ok' | 'down'>; batches: Step[] }) {
  const log: string[] = [];
  const backoffs = { prepared: 0 };
  const machine = historyMachine.provide({
    actors: {
      connect: fromPromise(async () => {
        const c = script.connects.shift() ?? 'ok';
        log.push(`connect:${c}`);
        if (c === 'down') throw new Outage('database down');
      }),
      rewriteWindow: fromPromise(async () => {
        log.push('rewrite');
        return 3;
      }),
      writeBatch: fromPromise(async ({ input }: { input: { mode: BatchMode } }) => {
        const s = script.batches.shift() ?? batch(0);
        log.push(`${input.mode}:${typeof s === 'string' ? s : s.entries}`);
        // Each batch takes 10 ms (so the idle loop is bounded in fake time).
        await new Promise((r) => setTimeout(r, 10));
        if (s === 'down') throw new Outage('write refused');
        if (s === 'bug') throw new Error('a bug');
        return s;
      }),
    },
    actions: {
      prepareBacklog: () => {
        backoffs.prepared += 1;
      },
    },
    delays: { retryDelay: ({ context }) => 100 * context.attempts },
  });
  const errors: unknown[] = [];
  const actor = createActor(machine, { input: { backend: 'vm' } });
  actor.subscribe({ error: (e) => errors.push(e) });
  actor.start();
  return { actor, log, errors, backoffs };
}

describe('historyMachine', () => {
  it('a database down at start: backoff growing with the attempts, then it drains and writes live', async () => {
    const { actor, log, backoffs } = run({ connects: ['down', 'down', 'ok'], batches: [batch(5)] });
    await vi.advanceTimersByTimeAsync(0);
    expect(actor.getSnapshot().value).toBe('backoff');
    expect(actor.getSnapshot().context.attempts).toBe(1);
    await vi.advanceTimersByTimeAsync(100);
    expect(actor.getSnapshot().context.attempts).toBe(2);
    await vi.advanceTimersByTimeAsync(200);
    await vi.advanceTimersByTimeAsync(30);
    expect(log.slice(0, 5)).toEqual(['connect:down', 'connect:down', 'connect:ok', 'rewrite', 'drain:5']);
    expect(actor.getSnapshot().value).toBe('writing');
    expect(actor.getSnapshot().context).toMatchObject({ attempts: 0, failures: 2, entries: 5, samples: 10, batches: 1 });
    // Each backoff asks the writer to read and encode the backlog ahead meanwhile.
    expect(backoffs.prepared).toBe(2);
    actor.stop();
  });

  it('a failed batch: backoff, reconnect, the window written again, then the backlog drained until a short batch', async () => {
    const { actor, log } = run({ connects: ['ok', 'ok'], batches: [batch(2), 'down', batch(9, true), batch(9, true), batch(4)] });
    await vi.advanceTimersByTimeAsync(30);
    expect(actor.getSnapshot().value).toBe('backoff');
    expect(actor.getSnapshot().context.needsRewrite).toBe(true);
    await vi.advanceTimersByTimeAsync(100 + 50);
    expect(log.slice(0, 9)).toEqual(['connect:ok', 'drain:2', 'live:down', 'connect:ok', 'rewrite', 'drain:9', 'drain:9', 'drain:4', 'live:0']);
    expect(actor.getSnapshot().context).toMatchObject({ rewrites: 1, needsRewrite: false, entries: 24, failures: 1, lastError: 'write refused' });
    actor.stop();
  });

  it('a database restarted between two batches (no write failed): the window is written again, then it writes on, no failure counted', async () => {
    const restarted: BatchResult = { ...batch(1), restarted: true };
    const { actor, log } = run({ connects: ['ok'], batches: [batch(2), restarted, batch(3)] });
    await vi.advanceTimersByTimeAsync(45);
    expect(log.slice(0, 6)).toEqual(['connect:ok', 'drain:2', 'live:1', 'rewrite', 'drain:3', 'live:0']);
    expect(actor.getSnapshot().context).toMatchObject({ rewrites: 1, failures: 0, attempts: 0, entries: 6, needsRewrite: false });
    actor.stop();
  });

  it('a full live batch means a backlog: it drains', async () => {
    const { actor, log } = run({ connects: ['ok'], batches: [batch(1), batch(9, true), batch(3)] });
    await vi.advanceTimersByTimeAsync(35);
    expect(log.slice(0, 4)).toEqual(['connect:ok', 'drain:1', 'live:9', 'drain:3']);
    actor.stop();
  });

  it('an error that is not an outage fails the actor (its supervisor decides)', async () => {
    const { actor, errors } = run({ connects: ['ok'], batches: ['bug'] });
    await vi.advanceTimersByTimeAsync(20);
    expect(actor.getSnapshot().status).toBe('error');
    expect(errors).toHaveLength(1);
  });
});
