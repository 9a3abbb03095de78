/**
 * The supervisor's laws (runtime/supervisor.ts header) on random failure
 * schedules, with fake time.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { backoffDelay, type BackoffPolicy } from '../../runtime/backoff.js';
import { Supervisor, type RestartType, type Strategy, type SupervisorEvent } from '../../runtime/supervisor.js';
import { ManualClock } from '../helpers/manualClock.js';
import { TestChildren } from '../helpers/testChild.js';

const policy: BackoffPolicy = { minBackoffMs: 10, maxBackoffMs: 400, randomFactor: 0.5, resetBackoffAfterMs: 2_000 };

const scenario = fc.record({
  strategy: fc.constantFrom<Strategy>('one_for_one', 'one_for_all', 'rest_for_one'),
  restarts: fc.array(fc.constantFrom<RestartType>('permanent', 'transient', 'temporary'), { minLength: 1, maxLength: 5 }),
  intensity: fc.integer({ min: 0, max: 6 }),
  periodMs: fc.integer({ min: 100, max: 5_000 }),
  failures: fc.array(fc.record({ dt: fc.integer({ min: 0, max: 1_500 }), child: fc.nat(), abnormal: fc.boolean() }), { maxLength: 30 }),
  seed: fc.double({ min: 0, max: 0.999, noNaN: true }),
  /** Wall-clock jumps (NTP on a box without a real-time clock): up to a year either way. */
  wallJumps: fc.array(fc.integer({ min: -366 * 86_400_000, max: 366 * 86_400_000 }), { minLength: 1, maxLength: 10 }),
});

type Scenario = typeof scenario extends fc.Arbitrary<infer T> ? T : never;

async function run(s: Scenario, jumpWall = false) {
  const clock = new ManualClock();
  const kids = new TestChildren(() => clock.now());
  const ids = s.restarts.map((_, i) => `c${i}`);
  const events: Array<SupervisorEvent & { at: number }> = [];
  let exit: unknown;
  const sup = new Supervisor(
    {
      id: 'sup',
      strategy: s.strategy,
      intensity: s.intensity,
      periodMs: s.periodMs,
      backoff: policy,
      clock,
      random: () => s.seed,
      onEvent: (e) => events.push({ ...e, at: clock.now() }),
    },
    ids.map((id, i) => kids.spec(id, s.restarts[i])),
  );
  sup.onExit((r) => {
    exit = r;
  });
  await sup.start();
  const injected: Array<{ id: string; at: number; abnormal: boolean }> = [];
  for (const [i, f] of s.failures.entries()) {
    if (jumpWall) {
      // Jump before and in the middle of the interval, while restarts are pending.
      clock.jumpWall(s.wallJumps[i % s.wallJumps.length]!);
      await clock.advance(Math.floor(f.dt / 2));
      clock.jumpWall(-s.wallJumps[(i + 1) % s.wallJumps.length]!);
      await clock.advance(f.dt - Math.floor(f.dt / 2));
    } else {
      await clock.advance(f.dt);
    }
    if (exit) break;
    const id = ids[f.child % ids.length]!;
    if (kids.exit(id, f.abnormal ? { kind: 'error', error: new Error('boom') } : { kind: 'normal' })) {
      injected.push({ id, at: clock.now(), abnormal: f.abnormal });
    }
  }
  await clock.advance(10_000);
  return { kids, ids, events, exit, injected, sup };
}

describe('supervisor laws on random failure schedules', () => {
  it('starts children in order', async () => {
    await fc.assert(
      fc.asyncProperty(scenario, async (s) => {
        const { kids, ids } = await run({ ...s, failures: [] });
        expect(kids.log.filter((l) => l.op === 'start').map((l) => l.id)).toEqual(ids);
      }),
      { numRuns: 30 },
    );
  });

  it('never exceeds intensity, and escalates exactly when the next restart would', async () => {
    await fc.assert(
      fc.asyncProperty(scenario, async (s) => {
        const { events, exit } = await run(s);
        const restarts = events.filter((e) => e.type === 'restart_scheduled').map((e) => e.at);
        const within = (t: number) => restarts.filter((r) => r > t - s.periodMs && r <= t).length;
        for (const t of restarts) expect(within(t)).toBeLessThanOrEqual(s.intensity);
        const esc = events.find((e) => e.type === 'escalated');
        if (esc) {
          expect(within(esc.at)).toBe(s.intensity);
          expect(exit).toMatchObject({ kind: 'error' });
        } else {
          expect(exit).toBeUndefined();
        }
      }),
      { numRuns: 150 },
    );
  });

  it('wall-clock jumps back and forth change nothing: the same restarts, escalation and exit at the same monotonic times', async () => {
    await fc.assert(
      fc.asyncProperty(scenario, async (s) => {
        const steady = await run(s);
        const jumping = await run(s, true);
        const shape = (r: Awaited<ReturnType<typeof run>>) => r.events.map((e) => (e.type === 'escalated' ? { type: e.type, child: e.child, at: e.at } : e));
        expect(shape(jumping)).toEqual(shape(steady));
        expect(jumping.kids.log).toEqual(steady.kids.log);
        expect((jumping.exit as { kind?: string } | undefined)?.kind).toBe((steady.exit as { kind?: string } | undefined)?.kind);
        // and intensity holds on the monotonic times
        const restarts = jumping.events.filter((e) => e.type === 'restart_scheduled').map((e) => e.at);
        for (const t of restarts) expect(restarts.filter((r) => r > t - s.periodMs && r <= t).length).toBeLessThanOrEqual(s.intensity);
      }),
      { numRuns: 150 },
    );
  });

  it('restart types: temporary never, transient only after an error, permanent always', async () => {
    await fc.assert(
      fc.asyncProperty(scenario, async (s) => {
        const { events, injected, ids } = await run({ ...s, intensity: 1_000 });
        for (const inj of injected) {
          const type = s.restarts[ids.indexOf(inj.id)];
          const scheduled = events.some((e) => e.type === 'restart_scheduled' && e.child === inj.id && e.at === inj.at);
          const expected = type === 'permanent' || (type === 'transient' && inj.abnormal);
          expect(scheduled).toBe(expected);
        }
      }),
      { numRuns: 150 },
    );
  });

  it('strategies: the failed group is stopped in reverse order and started in order after the backoff', async () => {
    await fc.assert(
      fc.asyncProperty(scenario, async (s) => {
        const scenarioFree = { ...s, intensity: 1_000, restarts: s.restarts.map(() => 'permanent' as const), failures: s.failures.slice(0, 1) };
        const { kids, events, ids, injected } = await run(scenarioFree);
        const inj = injected[0];
        if (!inj) return;
        const i = ids.indexOf(inj.id);
        const group = s.strategy === 'one_for_one' ? [inj.id] : s.strategy === 'one_for_all' ? ids : ids.slice(i);
        const sched = events.find((e) => e.type === 'restart_scheduled')!;
        expect(sched).toMatchObject({ child: inj.id, attempt: 1 });
        const after = kids.log.filter((l) => l.at >= inj.at && !(l.op === 'start' && l.at === 0));
        const stops = after.filter((l) => l.op === 'stop').map((l) => l.id);
        expect(stops).toEqual(group.filter((g) => g !== inj.id).reverse());
        const starts = after.filter((l) => l.op === 'start');
        expect(starts.map((l) => l.id)).toEqual(group);
        const delay = starts[0]!.at - inj.at;
        expect(delay).toBe((sched as { delayMs: number }).delayMs);
        expect(delay).toBeGreaterThanOrEqual(policy.minBackoffMs);
        expect(delay).toBeLessThanOrEqual(policy.minBackoffMs * (1 + policy.randomFactor));
      }),
      { numRuns: 100 },
    );
  });

  it('backoff grows per attempt and resets after a quiet run', async () => {
    await fc.assert(
      fc.asyncProperty(scenario, async (s) => {
        const { events } = await run({ ...s, strategy: 'one_for_one', intensity: 1_000, restarts: s.restarts.map(() => 'permanent' as const) });
        const lastStart = new Map<string, number>();
        const attempts = new Map<string, number>();
        for (const e of events) {
          if (e.type === 'started') lastStart.set(e.child, e.at);
          if (e.type !== 'restart_scheduled') continue;
          const ranFor = e.at - (lastStart.get(e.child) ?? 0);
          const prev = ranFor >= policy.resetBackoffAfterMs ? 0 : (attempts.get(e.child) ?? 0);
          expect(e.attempt).toBe(prev + 1);
          expect(e.delayMs).toBe(backoffDelay(policy, prev, s.seed));
          attempts.set(e.child, e.attempt);
        }
      }),
      { numRuns: 100 },
    );
  });

  it('on escalation stops every running child in reverse start order', async () => {
    await fc.assert(
      fc.asyncProperty(scenario, async (s) => {
        const { kids, events, ids } = await run({ ...s, intensity: 0, strategy: 'one_for_one', restarts: s.restarts.map(() => 'permanent' as const) });
        const esc = events.find((e) => e.type === 'escalated');
        if (!esc) return;
        const stops = kids.log.filter((l) => l.op === 'stop').map((l) => l.id);
        expect(stops).toEqual(ids.filter((id) => id !== esc.child).reverse());
        for (const id of ids) expect(kids.isRunning(id)).toBe(false);
      }),
      { numRuns: 60 },
    );
  });

  it('shutdown: stop() stops in reverse order and kills a child that outlives its timeout', async () => {
    const clock = new ManualClock();
    const order: string[] = [];
    let killed = false;
    const mk = (id: string, hang: boolean) => ({
      id,
      restart: 'permanent' as const,
      shutdown: 500,
      type: 'worker' as const,
      start: async () => ({
        stop: () => {
          order.push(id);
          return hang ? new Promise<void>(() => undefined) : Promise.resolve();
        },
        kill: () => {
          killed = true;
        },
        onExit: () => undefined,
      }),
    });
    const sup = new Supervisor({ id: 's', strategy: 'one_for_one', intensity: 1, periodMs: 1000, clock }, [mk('a', false), mk('b', true), mk('c', false)]);
    await sup.start();
    const stopped = sup.stop();
    await clock.advance(600);
    await stopped;
    expect(order).toEqual(['c', 'b', 'a']);
    expect(killed).toBe(true);
  });

  it('a nested supervisor that escalates is restarted by its parent, whose own intensity then ends the tree', async () => {
    const clock = new ManualClock();
    const kids = new TestChildren(() => clock.now());
    const events: SupervisorEvent[] = [];
    const inner = () =>
      new Supervisor({ id: 'inner', strategy: 'one_for_one', intensity: 0, periodMs: 1000, clock, backoff: policy, onEvent: (e) => events.push(e) }, [
        kids.spec('w'),
      ]);
    const root = new Supervisor(
      { id: 'root', strategy: 'one_for_one', intensity: 1, periodMs: 10_000, clock, backoff: policy, onEvent: (e) => events.push(e) },
      [Supervisor.asChild('inner', inner)],
    );
    let exit: unknown;
    root.onExit((r) => {
      exit = r;
    });
    await root.start();
    kids.exit('w', { kind: 'error', error: new Error('w died') });
    await clock.advance(1_000);
    expect(events.filter((e) => e.type === 'restart_scheduled' && e.supervisor === 'root')).toHaveLength(1);
    expect(kids.isRunning('w')).toBe(true);
    kids.exit('w', { kind: 'error', error: new Error('w died again') });
    await clock.advance(1_000);
    expect(exit).toMatchObject({ kind: 'error' });
    const message = (exit as { error: Error }).error.message;
    expect(message).toContain("supervisor 'root': child 'inner' exceeded the restart intensity of 1");
    expect(message).toContain("child 'w' exceeded the restart intensity of 0");
  });
});
