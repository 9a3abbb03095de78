/**
 * The alarm machine and the alarm Functions agree: random value changes, clock
 * advances and operator actions give the same states and the same event history
 * in memory and in a real Redis, and both refuse the same actions; every
 * transition of the machine's graph is committed once against Redis; two
 * operators acknowledging at once: one wins, the other is told the state.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { adjacencyMapToArray, getAdjacencyMap, getShortestPaths } from '@xstate/graph';
import {
  activeAlarmStates,
  ALARM_EVENT_TYPES,
  ALARM_STATES,
  alarmMachine,
  alarmTransitions,
  initialAlarm,
  stepAlarm,
  stepReason,
  type AlarmContext,
  type AlarmEvent,
  type AlarmInput,
  type AlarmSnapshotData,
  type AlarmState,
  type Severity,
} from '../../machines/alarmMachine.js';
import { INITIAL_DELAY_STATE, rawCondition, stepDelay, tickDelay, type ConditionSpec, type DelayState } from '../../machines/alarmCondition.js';
import { AlarmRefusedError } from '../../runtime/redis/alarms.js';
import { KEYS } from '../../runtime/redis/keys.js';
import type { VoltageRedis } from '../../runtime/redis/voltageRedis.js';
import { rawClient, wrapper } from '../helpers/servers.js';
import { startAlarmRedis, type AlarmRedis } from '../helpers/alarmRedis.js';

let r: AlarmRedis;
beforeAll(async () => {
  r = await startAlarmRedis();
});
afterAll(async () => {
  await r.stop();
});

interface HistoryEntry {
  readonly event: string;
  readonly from: string;
  readonly to: string;
  readonly severity: string;
  readonly why: string;
  readonly time: number;
}

const table = alarmTransitions();
const ACTIVE = new Set<AlarmState>(activeAlarmStates());

async function init(id: string, input: AlarmInput, ts = 1): Promise<void> {
  const a = initialAlarm(input);
  await r.bus.alarms.init({ id, ts, severity: a.context.severity, context: a.context, definition: JSON.stringify({ id }) });
}

/** The actor's way: read the stored alarm, step the machine from it, commit with compare-and-set. */
async function commitThroughRedis(bus: VoltageRedis, id: string, e: AlarmEvent, who: string): Promise<AlarmSnapshotData | undefined> {
  const stored = await bus.alarms.get(id);
  if (!stored) throw new Error(`no alarm ${id}`);
  const next = stepAlarm({ state: stored.state, context: stored.context }, e);
  if (!next) return undefined;
  await bus.alarms.commit({
    id,
    expectedVersion: stored.version,
    event: e.type,
    to: next.state,
    severity: next.context.severity,
    context: next.context,
    who,
    why: stepReason({ state: stored.state, context: stored.context }, next, e),
    value: null,
    ts: e.now,
  });
  return next;
}

async function history(id: string): Promise<HistoryEntry[]> {
  const entries = await r.client.xrange(KEYS.alarmEvents, '-', '+');
  return entries
    .map(([, f]) => Object.fromEntries(Array.from({ length: f.length / 2 }, (_, i) => [f[2 * i]!, f[2 * i + 1]!])) as Record<string, string>)
    .filter((f) => f.id === id)
    .map((f) => ({ event: f.event!, from: f.from!, to: f.to!, severity: f.severity!, why: f.why!, time: Number(f.time) }));
}

/**
 * A target the table does not have for this event from `state` (preferably one it has from some other state):
 * what a client working from a stale state would send. Between the targets the table allows, the machine's
 * guards choose; that choice is the actor's, and the table cannot check it.
 */
function wrongTarget(state: AlarmState, event: string): AlarmState {
  const allowed = table[state]?.[event] ?? [];
  const elsewhere = Object.values(table).flatMap((byEvent) => byEvent[event] ?? []);
  return ([...elsewhere, ...ALARM_STATES] as AlarmState[]).find((t) => !allowed.includes(t))!;
}

type Action =
  | { readonly kind: 'value'; readonly value: number }
  | { readonly kind: 'advance'; readonly ms: number }
  | { readonly kind: 'operator'; readonly event: AlarmEvent['type']; readonly durationMs: number; readonly oneShot: boolean };

const OPERATOR_EVENTS = ['ACK', 'SHELVE', 'UNSHELVE', 'RESET', 'SUPPRESS', 'UNSUPPRESS', 'OUT_OF_SERVICE', 'IN_SERVICE'] as const;
const actionArb: fc.Arbitrary<Action> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('value' as const), value: fc.double({ min: 5, max: 15, noNaN: true }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 1, max: 3_000 }) }) },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('operator' as const),
      event: fc.constantFrom(...OPERATOR_EVENTS),
      durationMs: fc.integer({ min: 1, max: 4_000 }),
      oneShot: fc.boolean(),
    }),
  },
);

let runs = 0;
/** States the model-based runs reached, so that a generator that never leaves `normal` cannot pass quietly. */
const visited = new Set<AlarmState>();

describe('alarm Functions against the machine', () => {
  it('model-based: same states, same event history, same refusals in memory and in Redis', async () => {
    const spec: ConditionSpec = { kind: 'above', limit: 10, deadband: 1 };
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          latch: fc.boolean(),
          escalateAfterMs: fc.option(fc.integer({ min: 500, max: 4_000 }), { nil: null }),
          reAlarmMs: fc.option(fc.integer({ min: 500, max: 4_000 }), { nil: null }),
          onDelayMs: fc.integer({ min: 0, max: 1_000 }),
          offDelayMs: fc.integer({ min: 0, max: 1_000 }),
          severity: fc.constantFrom<Severity>('warning', 'minor', 'major', 'critical'),
        }),
        fc.array(actionArb, { minLength: 5, maxLength: 40, size: 'max' }),
        async (cfg, actions) => {
          const id = `model-${runs++}`;
          const input: AlarmInput = { severity: cfg.severity, latch: cfg.latch, escalateAfterMs: cfg.escalateAfterMs, reAlarmMs: cfg.reAlarmMs };
          const delays = { onDelayMs: cfg.onDelayMs, offDelayMs: cfg.offDelayMs };
          await init(id, input);
          let model = initialAlarm(input);
          const modelHistory: HistoryEntry[] = [];
          let cond: DelayState = INITIAL_DELAY_STATE;
          let now = 1_000;

          /** One event to both sides; they must agree on whether and where it goes. */
          const apply = async (e: AlarmEvent) => {
            const next = stepAlarm(model, e);
            const viaRedis = await commitThroughRedis(r.bus, id, e, 'model-test');
            expect(viaRedis).toEqual(next);
            if (next) {
              modelHistory.push({
                event: e.type,
                from: model.state,
                to: next.state,
                severity: next.context.severity,
                why: stepReason(model, next, e),
                time: e.now,
              });
              model = next;
            }
          };

          for (const act of actions) {
            if (act.kind === 'value') {
              const raw = rawCondition(spec, cond.raw, { value: act.value, quality: 'good', ts: now }, now);
              const step = stepDelay(cond, raw, now, delays);
              cond = step.state;
              if (step.change) await apply({ type: step.change, now });
            } else if (act.kind === 'advance') {
              now += act.ms;
              const step = tickDelay(cond, now, delays);
              cond = step.state;
              if (step.change) await apply({ type: step.change, now });
              await apply({ type: 'TICK', now });
            } else {
              const e = (
                act.event === 'SHELVE'
                  ? act.oneShot
                    ? { type: 'SHELVE', now, oneShot: true }
                    : { type: 'SHELVE', now, durationMs: act.durationMs }
                  : { type: act.event, now }
              ) as AlarmEvent;
              const stored = (await r.bus.alarms.get(id))!;
              // A stale or wrong client: the target the machine did not choose is refused, naming the state.
              const wrong = wrongTarget(model.state, e.type);
              {
                const refused = await r.bus.alarms
                  .commit({
                    id,
                    expectedVersion: stored.version,
                    event: e.type,
                    to: wrong,
                    severity: model.context.severity,
                    context: model.context,
                    who: 'operator',
                    why: 'wrong target',
                    value: null,
                    ts: now,
                  })
                  .then(
                    () => undefined,
                    (err: unknown) => err,
                  );
                expect(refused).toBeInstanceOf(AlarmRefusedError);
                expect(refused).toMatchObject({ refusal: 'NOT_ALLOWED', state: model.state, version: stored.version });
              }
              await apply(e);
            }
            const stored = (await r.bus.alarms.get(id))!;
            expect(stored.state).toBe(model.state);
            visited.add(model.state);
            expect(stored.context).toEqual(model.context);
            expect(stored.version).toBe(1 + modelHistory.length);
            expect((await r.client.zscore(KEYS.alarmActive, id)) !== null).toBe(ACTIVE.has(model.state));
          }
          expect(await history(id)).toEqual(modelHistory);
        },
      ),
      {
        numRuns: 80,
        // Besides the random runs, one that surely latches: the coverage check below must not depend on luck.
        examples: [
          [
            { latch: true, escalateAfterMs: null, reAlarmMs: null, onDelayMs: 0, offDelayMs: 0, severity: 'major' },
            [
              { kind: 'value', value: 12 },
              { kind: 'advance', ms: 10 },
              { kind: 'value', value: 5 },
              { kind: 'advance', ms: 10 },
              { kind: 'operator', event: 'ACK', durationMs: 1, oneShot: false },
              { kind: 'value', value: 5 },
              { kind: 'operator', event: 'RESET', durationMs: 1, oneShot: false },
              { kind: 'value', value: 12 },
              { kind: 'operator', event: 'ACK', durationMs: 1, oneShot: false },
              { kind: 'value', value: 5 },
              { kind: 'advance', ms: 10 },
            ],
          ],
          // And one that surely returns to normal unacknowledged (a random run did not, once in CI).
          [
            { latch: false, escalateAfterMs: null, reAlarmMs: null, onDelayMs: 0, offDelayMs: 0, severity: 'minor' },
            [
              { kind: 'value', value: 12 },
              { kind: 'advance', ms: 10 },
              { kind: 'value', value: 5 },
              { kind: 'advance', ms: 10 },
              { kind: 'operator', event: 'ACK', durationMs: 1, oneShot: false },
            ],
          ],
        ],
      },
    );
    expect([...visited].sort()).toEqual([...ALARM_STATES].sort());
  }, 60_000);

  it('path coverage: every transition of the machine graph committed against Redis', async () => {
    const covered = new Set<string>();
    const at = 1;
    const events: AlarmEvent[] = [
      ...ALARM_EVENT_TYPES.filter((t) => t !== 'SHELVE' && t !== 'TICK').map((type) => ({ type, now: at }) as AlarmEvent),
      { type: 'SHELVE', now: at, durationMs: 1_000 },
      { type: 'SHELVE', now: at, oneShot: true },
      { type: 'TICK', now: 1_000_000 },
    ];
    let n = 0;
    for (const input of [
      { severity: 'minor', latch: false, escalateAfterMs: 1_000, reAlarmMs: 1_000 },
      { severity: 'minor', latch: true, escalateAfterMs: 1_000, reAlarmMs: 1_000 },
    ] as const) {
      const serializeState = (s: { value: unknown; context: AlarmContext }) => `${String(s.value)} ${JSON.stringify(s.context)}`;
      const options = { input, events, serializeState: serializeState as (s: unknown) => string, limit: 5_000 };
      const paths = new Map(getShortestPaths(alarmMachine, options).map((p) => [serializeState(p.state), p]));
      const edges = adjacencyMapToArray(getAdjacencyMap(alarmMachine, options));
      for (const edge of edges) {
        const from: AlarmSnapshotData = { state: edge.state.value as AlarmState, context: edge.state.context };
        const expected = stepAlarm(from, edge.event);
        if (!expected) continue; // the event changes nothing there: never committed
        const path = paths.get(serializeState(edge.state));
        expect(path, `a path to ${serializeState(edge.state)}`).toBeDefined();
        const id = `path-${n++}`;
        await init(id, input);
        for (const step of path!.steps) {
          if (!(ALARM_EVENT_TYPES as readonly string[]).includes(step.event.type)) continue; // xstate.init
          await commitThroughRedis(r.bus, id, step.event, 'path');
        }
        expect((await r.bus.alarms.get(id))?.state).toBe(from.state);
        const got = await commitThroughRedis(r.bus, id, edge.event, 'path');
        expect(got).toEqual(expected);
        expect((await r.bus.alarms.get(id))?.state).toBe(expected.state);
        covered.add(`${from.state} ${edge.event.type} ${expected.state}`);
      }
    }
    const all = Object.entries(table).flatMap(([from, byEvent]) => Object.entries(byEvent).flatMap(([ev, tos]) => tos.map((to) => `${from} ${ev} ${to}`)));
    expect([...covered].sort()).toEqual(all.sort());
  }, 60_000);
});

describe('alarm Functions: refusals, concurrency, restart', () => {
  it('two operators acknowledge at once: one wins, the other gets VERSION_CONFLICT naming the state', async () => {
    await init('conc', { severity: 'major' });
    await commitThroughRedis(r.bus, 'conc', { type: 'CONDITION_ON', now: 10 }, 'alarm/conc');
    const second = wrapper(r.server);
    try {
      // Both operators see the alarm at version 2, unacknowledged; both send ACK over their own connections at once.
      const seen = (await r.bus.alarms.get('conc'))!;
      const acked = stepAlarm({ state: seen.state, context: seen.context }, { type: 'ACK', now: 20 })!;
      const ack = (who: string) =>
        ({
          id: 'conc',
          expectedVersion: seen.version,
          event: 'ACK',
          to: acked.state,
          severity: acked.context.severity,
          context: acked.context,
          who,
          why: 'seen',
          value: null,
          ts: 20,
        }) as const;
      const results = await Promise.allSettled([r.bus.alarms.commit(ack('alice')), second.alarms.commit(ack('bob'))]);
      expect(results.filter((x) => x.status === 'fulfilled')).toEqual([{ status: 'fulfilled', value: 3 }]);
      const lost = results.find((x) => x.status === 'rejected') as PromiseRejectedResult;
      expect(lost.reason).toMatchObject({ refusal: 'VERSION_CONFLICT', state: 'acknowledged', version: 3 });
      expect((lost.reason as Error).message).toContain('version 3');
      expect((await history('conc')).filter((h) => h.event === 'ACK')).toHaveLength(1);
    } finally {
      await second.close();
    }
  });

  it('a commit from a stale version is refused and writes nothing, whatever the event', async () => {
    await init('stale', { severity: 'major' });
    const a = (await commitThroughRedis(r.bus, 'stale', { type: 'CONDITION_ON', now: 10 }, 'alarm/stale'))!;
    const before = await r.client.hgetall(KEYS.alarm('stale'));
    const err = await r.bus.alarms
      .commit({
        id: 'stale',
        expectedVersion: 1,
        event: 'ACK',
        to: 'acknowledged',
        severity: 'major',
        context: a.context,
        who: 'carol',
        why: '',
        value: null,
        ts: 11,
      })
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ALARM_VERSION_CONFLICT', state: 'unacknowledged', version: 2 });
    expect(await r.client.hgetall(KEYS.alarm('stale'))).toEqual(before);
    expect(await history('stale')).toHaveLength(1);
  });

  it('an action the state does not take is NOT_ALLOWED naming the state; an unknown alarm is NO_ALARM', async () => {
    await init('na', { severity: 'minor' });
    const a = initialAlarm({ severity: 'minor' });
    const ack = {
      id: 'na',
      expectedVersion: 1,
      event: 'ACK',
      to: 'acknowledged',
      severity: 'minor',
      context: a.context,
      who: 'dave',
      why: '',
      value: null,
      ts: 5,
    } as const;
    await expect(r.bus.alarms.commit(ack)).rejects.toMatchObject({
      refusal: 'NOT_ALLOWED',
      state: 'normal',
      message: expect.stringContaining('in state normal'),
    });
    await expect(r.bus.alarms.commit({ ...ack, id: 'nobody' })).rejects.toMatchObject({ refusal: 'NO_ALARM' });
  });

  it('alarm_init after a restart resumes what is stored; alarm:active keeps the time the alarm became active', async () => {
    await init('resume', { severity: 'major', latch: true });
    await commitThroughRedis(r.bus, 'resume', { type: 'CONDITION_ON', now: 100 }, 'alarm/resume');
    await commitThroughRedis(r.bus, 'resume', { type: 'ACK', now: 200 }, 'erin');
    const again = await r.bus.alarms.init({
      id: 'resume',
      ts: 300,
      severity: 'major',
      context: initialAlarm({ severity: 'major' }).context,
      definition: '{"v":2}',
    });
    expect(again).toMatchObject({ created: false, state: 'acknowledged', version: 3 });
    expect(await r.client.zscore(KEYS.alarmActive, 'resume')).toBe('100');
    expect(await r.client.hget(KEYS.alarm('resume'), 'definition')).toBe('{"v":2}');
  });

  it('each commit is published on alarm:update', async () => {
    const sub = rawClient(r.server);
    try {
      const got = new Promise<string>((resolve) => sub.on('message', (_c: string, m: string) => resolve(m)));
      await sub.subscribe(KEYS.alarmUpdate);
      await init('pub', { severity: 'warning' });
      await commitThroughRedis(r.bus, 'pub', { type: 'SUPPRESS', now: 7 }, 'frank');
      expect(JSON.parse(await got)).toMatchObject({ id: 'pub', event: 'SUPPRESS', from: 'normal', to: 'suppressed', version: 2, time: 7, who: 'frank' });
    } finally {
      sub.disconnect();
    }
  });

  it('every state name in the table is one the machine has', () => {
    for (const [from, byEvent] of Object.entries(table)) {
      expect(ALARM_STATES).toContain(from);
      for (const tos of Object.values(byEvent)) for (const t of tos) expect(ALARM_STATES).toContain(t);
    }
  });
});
