/**
 * CommandEnds with fake time and an in-memory stand-in for the subscriber
 * connection (pure logic; the rules' integration tests run it against Redis):
 * the note settles, a note told before the rule waited is found by the first
 * read, a reconnect reads again, the deadline reads once and gives 'pending',
 * a stop gives 'pending' at once; the command is read at most twice, with one
 * timer at a time and one abort listener per rule; one whose subscription
 * failed leaves no reconnect listener behind.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { CommandEnds, commandEnds } from '../../actors/rules/commandEnds.js';
import type { CommandRecord } from '../../runtime/domain/commands.js';
import type { Subscriptions } from '../../runtime/redis/subscriptions.js';

function fakes(statuses: Map<string, string>) {
  let onNote: (m: string) => void = () => undefined;
  let onReconnect: () => void = () => undefined;
  const subs = {
    on: (_channel: string, h: (m: string) => void) => {
      onNote = h;
      return Promise.resolve(async () => undefined);
    },
    onReconnect: (l: () => void) => {
      onReconnect = l;
      return () => undefined;
    },
  } as unknown as Subscriptions;
  const reads: string[] = [];
  const commands = {
    command: (id: string) => {
      reads.push(id);
      const status = statuses.get(id);
      return Promise.resolve(status ? ({ id, status } as unknown as CommandRecord) : undefined);
    },
  };
  return { ends: new CommandEnds(subs, commands), note: (m: string) => onNote(m), reconnect: () => onReconnect(), reads };
}

describe('CommandEnds', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('a note settles the waiting rule; the command is read once (the first read) and not after', async () => {
    const statuses = new Map([['cmd-1', 'pending']]);
    const f = fakes(statuses);
    const end = f.ends.wait('cmd-1', 15_000, new AbortController().signal);
    await vi.advanceTimersByTimeAsync(100);
    statuses.set('cmd-1', 'confirmed');
    f.note('cmd-1 confirmed');
    await expect(end).resolves.toBe('confirmed');
    await vi.advanceTimersByTimeAsync(20_000);
    expect(f.reads).toEqual(['cmd-1']);
  });

  it('an end told before the rule waited is found by the first read', async () => {
    const f = fakes(new Map([['cmd-2', 'failed']]));
    const end = f.ends.wait('cmd-2', 15_000, new AbortController().signal);
    await vi.advanceTimersByTimeAsync(50);
    await expect(end).resolves.toBe('failed');
  });

  it('a note missed while the connection was down: the reconnect reads every waiting command', async () => {
    const statuses = new Map([['cmd-3', 'pending']]);
    const f = fakes(statuses);
    const end = f.ends.wait('cmd-3', 15_000, new AbortController().signal);
    await vi.advanceTimersByTimeAsync(60);
    statuses.set('cmd-3', 'timeout');
    f.reconnect();
    await vi.advanceTimersByTimeAsync(0);
    await expect(end).resolves.toBe('timeout');
  });

  it('no end by the deadline: read once more, then pending; a stop gives pending at once; notes of others are ignored', async () => {
    const f = fakes(new Map([['cmd-4', 'pending']]));
    const late = f.ends.wait('cmd-4', 1_000, new AbortController().signal);
    f.note('cmd-9 confirmed');
    f.note('garbage');
    await vi.advanceTimersByTimeAsync(1_000);
    await expect(late).resolves.toBe('pending');
    expect(f.reads).toEqual(['cmd-4', 'cmd-4']);
    const stop = new AbortController();
    const stopped = f.ends.wait('cmd-5', 15_000, stop.signal);
    stop.abort();
    await expect(stopped).resolves.toBe('pending');
  });

  it("one timer per waiting command and one abort listener per rule: a rule's stop gives all its waits pending", async () => {
    const f = fakes(new Map());
    const stop = new AbortController();
    const added = vi.spyOn(stop.signal, 'addEventListener');
    const waits = ['cmd-6', 'cmd-7', 'cmd-8'].map((id) => f.ends.wait(id, 15_000, stop.signal));
    expect(vi.getTimerCount()).toBe(3);
    expect(added).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(60);
    // After the first read each wait holds its deadline's timer only.
    expect(vi.getTimerCount()).toBe(3);
    f.note('cmd-7 confirmed');
    await expect(waits[1]).resolves.toBe('confirmed');
    expect(vi.getTimerCount()).toBe(2);
    stop.abort();
    await expect(Promise.all(waits)).resolves.toEqual(['pending', 'confirmed', 'pending']);
    expect(vi.getTimerCount()).toBe(0);
    expect(added).toHaveBeenCalledTimes(1);
  });

  it('rule actors restarted against a Redis that refuses the subscription: no reconnect listener is left per failed start', async () => {
    const listeners = new Set<() => void>();
    let subscribes = 0;
    const subs = {
      on: () => {
        subscribes++;
        return Promise.reject(new Error('ERR refused'));
      },
      onReconnect: (l: () => void) => {
        listeners.add(l);
        return () => {
          listeners.delete(l);
        };
      },
    } as unknown as Subscriptions;
    const commands = { command: () => Promise.resolve(undefined) };
    for (let i = 0; i < 20; i++) {
      // What a rule actor's start does: each failed one is dropped and the next start makes another.
      await expect(commandEnds(subs, commands).ready).rejects.toThrow('refused');
      expect(listeners.size).toBe(0);
    }
    expect(subscribes).toBe(20);
  });
});
