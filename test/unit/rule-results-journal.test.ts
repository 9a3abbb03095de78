/**
 * The executions' results journaled in batches (ResultsJournal, fake time and an
 * in-memory stand-in for rule_record): the results told within the delay of the
 * first go in one call, in order; a full batch goes at once; a flush (a rule
 * stopping) writes what waits; a failed call rejects every result of its batch.
 * And the registry's prepared report (rule_commit writes it with the step): due
 * on a change of state, throttled otherwise, journaled like snapshot()'s.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ResultsJournal } from '../../actors/rules/resultsJournal.js';
import type { RuleResults } from '../../runtime/redis/rules.js';
import { ActorRegistry } from '../../runtime/registry.js';
import type { VoltageRedis } from '../../runtime/redis/voltageRedis.js';
import { quietLog } from '../helpers/servers.js';

const result = (id: string, of: string): RuleResults => ({ id, of, results: { branch: 'then', actions: [] }, counters: { commands: 1 }, ts: 1_000 });

describe('ResultsJournal', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('writes the results told within the delay in one call, in order; a flush writes what waits at once', async () => {
    const calls: string[][] = [];
    const recordMany = async (rs: readonly RuleResults[]) => {
      calls.push(rs.map((r) => r.of));
      return rs.map((r) => `e-${r.of}`);
    };
    const journal = new ResultsJournal({ recordMany }, 200);
    const done = [journal.add(result('a', '1')), journal.add(result('b', '2'))];
    await vi.advanceTimersByTimeAsync(199);
    expect(calls).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    await Promise.all(done);
    expect(calls).toEqual([['1', '2']]);
    const third = journal.add(result('a', '3'));
    await journal.flush();
    await third;
    expect(calls).toEqual([['1', '2'], ['3']]);
    // Nothing waits: no call.
    await journal.flush();
    await vi.advanceTimersByTimeAsync(1_000);
    expect(calls).toHaveLength(2);
  });

  it('a full batch goes at once; a failed call rejects each result of its batch', async () => {
    let fail = false;
    const sizes: number[] = [];
    const journal = new ResultsJournal({
      recordMany: async (rs) => {
        sizes.push(rs.length);
        if (fail) throw new Error('down');
        return rs.map(() => 'e');
      },
    });
    await Promise.all(Array.from({ length: 200 }, (_, i) => journal.add(result('a', String(i)))));
    expect(sizes).toEqual([200]);
    fail = true;
    const both = [journal.add(result('a', 'x')), journal.add(result('b', 'y'))];
    const settled = Promise.allSettled(both);
    await vi.advanceTimersByTimeAsync(1_000);
    expect((await settled).map((s) => s.status)).toEqual(['rejected', 'rejected']);
  });
});

describe("the registry's prepared report", () => {
  it('is due on a change of state and throttled otherwise; once written, snapshot() counts from it', () => {
    const reports: Array<{ id: string; fields: Record<string, unknown> }> = [];
    const redis = {
      actors: {
        report: async (id: string, fields: Record<string, unknown>) => {
          reports.push({ id, fields });
          return 1;
        },
      },
    } as unknown as VoltageRedis;
    const registry = new ActorRegistry(redis, quietLog, 1_000);
    const first = registry.prepare('rule/x', 'active', () => ({ version: 2 }), 'change');
    expect(first).toMatchObject({ actor: 'rule/x', fields: { state: '"active"', context: '{"version":2}' } });
    expect(first?.transition).toMatchObject({ event: 'change', from: '', to: '"active"' });
    // Not written yet: asked again, it is still due, and nothing went to Redis.
    expect(registry.prepare('rule/x', 'active', () => ({ version: 2 }))).toBeDefined();
    expect(reports).toEqual([]);
    registry.wrote(first!);
    // The same state within the interval: not due (snapshot() throttles it); another state: due, journaled from the one written.
    expect(registry.prepare('rule/x', 'active', () => ({ version: 3 }))).toBeUndefined();
    expect(registry.prepare('rule/x', 'idle', () => ({ version: 3 }), 'change')?.transition).toMatchObject({ from: '"active"', to: '"idle"' });
    registry.snapshot('rule/x', 'active', () => ({ version: 3 }));
    expect(reports).toEqual([]);
    registry.dispose();
  });
});
