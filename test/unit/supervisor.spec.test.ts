/**
 * Child specs are validated before anything starts: unique ids, valid
 * shutdowns (positive ms, 'brutal_kill', 'infinity'; 'infinity' the default of
 * a supervisor child), one error that names every problem.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ChildSpecError, DEFAULT_WORKER_SHUTDOWN_MS, childSpecProblems, shutdownOf, type ChildSpec, type Shutdown } from '../../runtime/childSpec.js';
import { Supervisor } from '../../runtime/supervisor.js';
import { ManualClock } from '../helpers/manualClock.js';

let starts = 0;
const spec = (id: string, shutdown?: Shutdown, type: ChildSpec['type'] = 'worker'): ChildSpec => ({
  id,
  restart: 'permanent',
  type,
  shutdown,
  start: async () => {
    starts += 1;
    return { stop: async () => undefined, onExit: () => undefined };
  },
});
const make = (specs: readonly ChildSpec[]) => new Supervisor({ id: 'channels', strategy: 'one_for_one', intensity: 1, periodMs: 1_000 }, specs);

function rejection(specs: readonly ChildSpec[]): ChildSpecError {
  try {
    make(specs);
  } catch (e) {
    expect(e).toBeInstanceOf(ChildSpecError);
    return e as ChildSpecError;
  }
  throw new Error('the specs were accepted');
}

describe('child spec validation', () => {
  it('refuses duplicate ids with a clear error, before starting anything', () => {
    starts = 0;
    const e = rejection([spec('ch1'), spec('ch2'), spec('ch1')]);
    expect(e.code).toBe('INVALID_CHILD_SPEC');
    expect(e.message).toContain("supervisor 'channels'");
    expect(e.message).toContain("child 'ch1': duplicate id");
    expect(e.problems).toHaveLength(1);
    expect(starts).toBe(0);
  });

  it('accepts a positive whole number of ms, brutal_kill and infinity', () => {
    fc.assert(
      fc.property(fc.oneof(fc.integer({ min: 1, max: 2 ** 40 }), fc.constantFrom<Shutdown>('brutal_kill', 'infinity')), (shutdown) => {
        expect(childSpecProblems([spec('a', shutdown)])).toEqual([]);
      }),
    );
    expect(() => make([spec('a'), spec('b', 1), spec('c', 'infinity', 'supervisor'), spec('d', 'brutal_kill')])).not.toThrow();
  });

  it('refuses any other shutdown, naming the child and the value', () => {
    const bad = fc.oneof(
      fc.integer({ max: 0 }),
      fc.double({ noDefaultInfinity: false }).filter((n) => !Number.isSafeInteger(n)),
      fc.string().filter((x) => x !== 'brutal_kill' && x !== 'infinity'),
    );
    fc.assert(
      fc.property(bad, (shutdown) => {
        const e = rejection([spec('ch7', shutdown as Shutdown)]);
        expect(e.problems).toHaveLength(1);
        expect(e.problems[0]).toMatch(/^child 'ch7': shutdown .* is not a positive whole number of milliseconds, 'brutal_kill' or 'infinity'$/);
      }),
    );
  });

  it('lists every problem at once: empty id, unknown restart and type, bad shutdown, duplicates', () => {
    const e = rejection([
      spec(''),
      { ...spec('a'), restart: 'sometimes' as ChildSpec['restart'] },
      { ...spec('b'), type: 'daemon' as ChildSpec['type'] },
      spec('c', 0),
      spec('c'),
    ]);
    expect(e.problems).toEqual([
      'child #1: the id must be a non-empty string',
      `child 'a': restart "sometimes" is not 'permanent', 'transient' or 'temporary'`,
      `child 'b': type "daemon" is not 'worker' or 'supervisor'`,
      `child 'c': shutdown 0 is not a positive whole number of milliseconds, 'brutal_kill' or 'infinity'`,
      `child 'c': duplicate id (ids are unique within a supervisor)`,
    ]);
  });

  it('defaults: infinity for a supervisor child (asChild too), 5 s for a worker', () => {
    expect(shutdownOf(spec('w'))).toBe(DEFAULT_WORKER_SHUTDOWN_MS);
    expect(shutdownOf(spec('s', undefined, 'supervisor'))).toBe('infinity');
    expect(shutdownOf(Supervisor.asChild('channels', () => make([])))).toBe('infinity');
    expect(shutdownOf(Supervisor.asChild('channels', () => make([]), 'permanent', 30_000))).toBe(30_000);
  });

  it('brutal_kill kills at once without asking the child to stop', async () => {
    const clock = new ManualClock();
    const calls: string[] = [];
    const child: ChildSpec = {
      id: 'k',
      restart: 'permanent',
      type: 'worker',
      shutdown: 'brutal_kill',
      start: async () => ({
        stop: async () => {
          calls.push('stop');
        },
        kill: () => {
          calls.push('kill');
        },
        onExit: () => undefined,
      }),
    };
    const sup = new Supervisor({ id: 's', strategy: 'one_for_one', intensity: 1, periodMs: 1_000, clock }, [child]);
    await sup.start();
    await sup.stop();
    expect(calls).toEqual(['kill']);
  });
});
