/**
 * A nested supervisor whose children are slow to stop: no second copy of a
 * channel starts before the first has stopped. Each channel owns a serial port
 * in a shared ownership set while it runs; a start that finds its port taken
 * is an overlap, which must never happen (runtime/supervisor.ts, laws 1 and 1a).
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { BackoffPolicy } from '../../runtime/backoff.js';
import { Supervisor, type ChildSpec, type ExitReason, type Shutdown, type Strategy, type SupervisorEvent } from '../../runtime/supervisor.js';
import { ManualClock } from '../helpers/manualClock.js';
import { TestChildren } from '../helpers/testChild.js';

const policy: BackoffPolicy = { minBackoffMs: 100, maxBackoffMs: 1_000, randomFactor: 0, resetBackoffAfterMs: 60_000 };

interface Channel {
  readonly stopMs: number;
  readonly shutdown?: Shutdown;
  readonly killable: boolean;
}

/** Channels that each own a port while they run: the port is released when the stop completes, the kill returns or the channel exits. */
class Ports {
  readonly owned = new Set<string>();
  readonly overlaps: string[] = [];
  readonly log: Array<{ op: 'own' | 'release'; id: string; at: number }> = [];
  private readonly exits = new Map<string, (r: ExitReason) => void>();
  constructor(private readonly clock: ManualClock) {}

  spec(id: string, c: Channel): ChildSpec {
    const port = `/dev/ttyS-${id}`;
    return {
      id,
      restart: 'permanent',
      type: 'worker',
      shutdown: c.shutdown,
      start: async () => {
        if (this.owned.has(port)) this.overlaps.push(`${id} started at ${this.clock.now()} while the previous copy still owned ${port}`);
        this.owned.add(port);
        this.log.push({ op: 'own', id, at: this.clock.now() });
        let released = false;
        const release = () => {
          if (released) return;
          released = true;
          this.owned.delete(port);
          this.exits.delete(id);
          this.log.push({ op: 'release', id, at: this.clock.now() });
        };
        let listener: ((r: ExitReason) => void) | undefined;
        this.exits.set(id, (r) => {
          release();
          listener?.(r);
        });
        return {
          stop: () =>
            new Promise<void>((resolve) => {
              this.clock.setTimeout(() => {
                release();
                resolve();
              }, c.stopMs);
            }),
          ...(c.killable ? { kill: release } : {}),
          onExit: (l) => {
            listener = l;
          },
        };
      },
    };
  }

  fail(id: string): boolean {
    const f = this.exits.get(id);
    f?.({ kind: 'error', error: new Error(`${id}: link lost`) });
    return f !== undefined;
  }
}

function tree(
  clock: ManualClock,
  ports: Ports,
  channels: readonly Channel[],
  opts: { rootStrategy: Strategy; innerStrategy: Strategy; nestedShutdown?: Shutdown; events?: SupervisorEvent[] },
) {
  const kids = new TestChildren(() => clock.now());
  const onEvent = (e: SupervisorEvent) => opts.events?.push(e);
  const inner = () =>
    new Supervisor(
      { id: 'channels', strategy: opts.innerStrategy, intensity: 1_000, periodMs: 1_000, backoff: policy, clock, onEvent },
      channels.map((c, i) => ports.spec(`ch${i + 1}`, c)),
    );
  const nested = Supervisor.asChild('channels', inner, 'permanent', opts.nestedShutdown);
  const root = new Supervisor({ id: 'root', strategy: opts.rootStrategy, intensity: 1_000, periodMs: 1_000, backoff: policy, clock, onEvent }, [
    kids.spec('models'),
    nested,
  ]);
  return { root, kids };
}

const seven = (c: Channel) => Array.from({ length: 7 }, () => c);

describe('a nested supervisor with slow children', () => {
  it('is waited for (shutdown infinity): seven channels taking 20 s each to stop are restarted only once all have stopped', async () => {
    const clock = new ManualClock();
    const ports = new Ports(clock);
    const events: SupervisorEvent[] = [];
    const { root, kids } = tree(clock, ports, seven({ stopMs: 20_000, shutdown: 60_000, killable: false }), {
      rootStrategy: 'one_for_all',
      innerStrategy: 'one_for_one',
      events,
    });
    await root.start();
    expect(ports.owned.size).toBe(7);
    kids.exit('models', { kind: 'error', error: new Error('models failed') });
    await clock.advance(139_000);
    expect(ports.owned.size).toBe(1); // still stopping, in reverse order: ch1 last
    expect(ports.log.filter((l) => l.op === 'own')).toHaveLength(7); // and nothing restarted beside it
    await clock.advance(10_000);
    expect(events.find((e) => e.type === 'stopped' && e.child === 'channels')).toMatchObject({ killed: false });
    expect(ports.owned.size).toBe(7);
    expect(ports.log.filter((l) => l.op === 'own')).toHaveLength(14);
    const lastRelease = Math.max(...ports.log.filter((l) => l.op === 'release').map((l) => l.at));
    const firstRestart = Math.min(...ports.log.filter((l) => l.op === 'own' && l.at > 0).map((l) => l.at));
    expect(lastRelease).toBe(140_000);
    expect(firstRestart).toBeGreaterThanOrEqual(lastRelease);
    expect(ports.overlaps).toEqual([]);
  });

  it('with a finite shutdown is killed together with its children, and restarts only once they are gone', async () => {
    const clock = new ManualClock();
    const ports = new Ports(clock);
    const events: SupervisorEvent[] = [];
    const { root, kids } = tree(clock, ports, seven({ stopMs: 20_000, shutdown: 60_000, killable: true }), {
      rootStrategy: 'one_for_all',
      innerStrategy: 'one_for_one',
      nestedShutdown: 30_000,
      events,
    });
    await root.start();
    kids.exit('models', { kind: 'error', error: new Error('models failed') });
    await clock.advance(30_000);
    expect(events.find((e) => e.type === 'stopped' && e.supervisor === 'root' && e.child === 'channels')).toMatchObject({ killed: true });
    expect(ports.log.filter((l) => l.op === 'release' && l.at === 30_000)).toHaveLength(6); // one stopped by then, six killed with their supervisor
    await clock.advance(1_000);
    expect(ports.owned.size).toBe(7);
    expect(ports.overlaps).toEqual([]);
    // The stops the kill cut short finish later; they must not touch the new copies.
    await clock.advance(60_000);
    expect(ports.owned.size).toBe(7);
    expect(ports.overlaps).toEqual([]);
  });

  it('with a finite shutdown and children that cannot be killed, the restart still waits for their stops', async () => {
    const clock = new ManualClock();
    const ports = new Ports(clock);
    const { root, kids } = tree(clock, ports, seven({ stopMs: 20_000, shutdown: 60_000, killable: false }), {
      rootStrategy: 'one_for_all',
      innerStrategy: 'one_for_one',
      nestedShutdown: 30_000,
    });
    await root.start();
    kids.exit('models', { kind: 'error', error: new Error('models failed') });
    await clock.advance(100_000);
    expect(ports.log.filter((l) => l.op === 'own')).toHaveLength(7);
    await clock.advance(200_000);
    expect(ports.owned.size).toBe(7);
    expect(ports.overlaps).toEqual([]);
  });

  it('never runs two copies of a channel, whatever the shutdowns, stop times and failures', async () => {
    const shutdown = fc.oneof(fc.constantFrom<Shutdown>('infinity', 'brutal_kill'), fc.integer({ min: 1, max: 30_000 }));
    const strategy = fc.constantFrom<Strategy>('one_for_one', 'one_for_all', 'rest_for_one');
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ stopMs: fc.integer({ min: 0, max: 40_000 }), shutdown: fc.option(shutdown, { nil: undefined }), killable: fc.boolean() }), {
          minLength: 1,
          maxLength: 4,
        }),
        fc.option(shutdown, { nil: undefined }),
        strategy,
        strategy,
        fc.array(fc.record({ dt: fc.integer({ min: 0, max: 50_000 }), target: fc.nat() }), { maxLength: 8 }),
        async (channels, nestedShutdown, rootStrategy, innerStrategy, failures) => {
          const clock = new ManualClock();
          const ports = new Ports(clock);
          const { root, kids } = tree(clock, ports, channels, { rootStrategy, innerStrategy, nestedShutdown });
          await root.start();
          for (const f of failures) {
            await clock.advance(f.dt);
            const i = f.target % (channels.length + 1);
            if (i === channels.length) kids.exit('models', { kind: 'error', error: new Error('models failed') });
            else ports.fail(`ch${i + 1}`);
          }
          await clock.advance(1_000_000);
          expect(ports.overlaps).toEqual([]);
          expect(ports.owned.size).toBe(channels.length);
          const stopping = root.stop();
          await clock.advance(1_000_000);
          await stopping;
          expect(ports.owned.size).toBe(0);
        },
      ),
      { numRuns: 120 },
    );
  });
});
