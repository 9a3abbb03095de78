/**
 * The alarm machine state by state, its absolute deadlines (shelve expiry,
 * escalation), and the transition table that Lua checks, read off it.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { directStepOf } from '../../machines/quietStep.js';
import {
  activeAlarmStates,
  alarmMachine,
  ALARM_EVENT_TYPES,
  ALARM_STATES,
  alarmTransitions,
  initialAlarm,
  stepAlarm,
  stepAlarmReference,
  stepReason,
  type AlarmContext,
  type AlarmEvent,
  type AlarmInput,
  type AlarmSnapshotData,
  type AlarmState,
} from '../../machines/alarmMachine.js';

/** Applies events in order; an event the machine does not take leaves the alarm as it was. */
function run(events: readonly AlarmEvent[], input: AlarmInput = { severity: 'major' }): AlarmSnapshotData {
  let a = initialAlarm(input);
  for (const e of events) a = stepAlarm(a, e) ?? a;
  return a;
}

const on = (now = 1): AlarmEvent => ({ type: 'CONDITION_ON', now });
const off = (now = 2): AlarmEvent => ({ type: 'CONDITION_OFF', now });
const op = (type: 'ACK' | 'UNSHELVE' | 'RESET' | 'SUPPRESS' | 'UNSUPPRESS' | 'OUT_OF_SERVICE' | 'IN_SERVICE', now = 3): AlarmEvent => ({ type, now });

describe('alarm machine: the ISA-18.2 cycle', () => {
  it('normal → unacknowledged → acknowledged → normal', () => {
    expect(run([]).state).toBe('normal');
    expect(run([on()]).state).toBe('unacknowledged');
    expect(run([on(), op('ACK')]).state).toBe('acknowledged');
    expect(run([on(), op('ACK'), off(4)]).state).toBe('normal');
  });

  it('returned to normal unacknowledged: ACK ends it; the condition coming back re-alarms', () => {
    expect(run([on(), off()]).state).toBe('returnedUnack');
    expect(run([on(), off(), op('ACK')]).state).toBe('normal');
    expect(run([on(), off(), on(4)]).state).toBe('unacknowledged');
  });

  it('latched: the condition clearing does not end the alarm; only RESET does', () => {
    const latch = { severity: 'major', latch: true } as const;
    expect(run([on(), off()], latch).state).toBe('latched');
    expect(run([on(), op('ACK'), off(4)], latch).state).toBe('latched');
    expect(run([on(), off(), op('ACK')], latch).state).toBe('latched');
    expect(run([on(), off(), op('RESET')], latch).state).toBe('normal');
    expect(run([on(), off(), on(5)], latch).state).toBe('unacknowledged');
  });

  it('suppressed by design and out of service track the condition and re-check it when they end', () => {
    for (const [enter, leave, state] of [
      ['SUPPRESS', 'UNSUPPRESS', 'suppressed'],
      ['OUT_OF_SERVICE', 'IN_SERVICE', 'outOfService'],
    ] as const) {
      expect(run([op(enter)]).state).toBe(state);
      expect(run([op(enter), on(4)]).state).toBe(state);
      expect(run([op(enter), on(4), op(leave, 5)]).state).toBe('unacknowledged');
      expect(run([on(), op(enter), off(4), op(leave, 5)]).state).toBe('normal');
    }
  });

  it('out of service overrides shelved and suppressed; nothing else leaves them early', () => {
    expect(run([op('SUPPRESS'), op('OUT_OF_SERVICE', 4)]).state).toBe('outOfService');
    expect(run([{ type: 'SHELVE', now: 1, durationMs: 10 }, op('OUT_OF_SERVICE', 4)]).state).toBe('outOfService');
    expect(run([op('SUPPRESS'), op('ACK', 4), op('RESET', 5)]).state).toBe('suppressed');
  });
});

describe('alarm machine: shelving', () => {
  it('a timed shelve ends at its absolute deadline and re-checks the condition', () => {
    const shelved = run([on(1), { type: 'SHELVE', now: 1_000, durationMs: 60_000 }]);
    expect(shelved.state).toBe('shelved');
    expect(shelved.context.shelvedUntil).toBe(61_000);
    expect(stepAlarm(shelved, { type: 'TICK', now: 60_999 })).toBeUndefined();
    expect(stepAlarm(shelved, { type: 'TICK', now: 61_000 })?.state).toBe('unacknowledged');
    const cleared = stepAlarm(shelved, off(2_000))!;
    expect(stepAlarm(cleared, { type: 'TICK', now: 61_000 })?.state).toBe('normal');
  });

  it('the deadline survives a restart: a snapshot written out and read back expires at the same time', () => {
    const shelved = run([on(1), { type: 'SHELVE', now: 1_000, durationMs: 60_000 }]);
    const restored = JSON.parse(JSON.stringify(shelved)) as AlarmSnapshotData;
    expect(stepAlarm(restored, { type: 'TICK', now: 61_000 })).toEqual(stepAlarm(shelved, { type: 'TICK', now: 61_000 }));
  });

  it('a one-shot shelve lasts until the next return to normal, and never expires by time', () => {
    const s = run([on(1), { type: 'SHELVE', now: 2, oneShot: true }]);
    expect(s.context.oneShot).toBe(true);
    expect(stepAlarm(s, { type: 'TICK', now: 1e12 })).toBeUndefined();
    expect(stepAlarm(s, off(3))?.state).toBe('normal');
    expect(run([on(1), { type: 'SHELVE', now: 2, oneShot: true }, off(3), on(4)]).state).toBe('unacknowledged');
  });

  it('UNSHELVE re-checks the condition', () => {
    expect(run([on(1), { type: 'SHELVE', now: 2, durationMs: 5 }, op('UNSHELVE', 3)]).state).toBe('unacknowledged');
    expect(run([{ type: 'SHELVE', now: 2, durationMs: 5 }, op('UNSHELVE', 3)]).state).toBe('normal');
  });
});

describe('alarm machine: escalation', () => {
  const input = { severity: 'minor', escalateAfterMs: 1_000 } as const;

  it('unacknowledged for escalateAfterMs: severity rises one step, again after as long, up to critical', () => {
    let a = run([on(0)], input);
    expect(a.context.escalateAt).toBe(1_000);
    expect(stepAlarm(a, { type: 'TICK', now: 999 })).toBeUndefined();
    a = stepAlarm(a, { type: 'TICK', now: 1_000 })!;
    expect(a).toMatchObject({ state: 'unacknowledged', context: { severity: 'major', escalateAt: 2_000 } });
    a = stepAlarm(a, { type: 'TICK', now: 2_500 })!;
    expect(a.context).toMatchObject({ severity: 'critical', escalateAt: null });
    expect(stepAlarm(a, { type: 'TICK', now: 1e9 })).toBeUndefined();
  });

  it('an acknowledgement stops escalation; the return to normal restores the configured severity', () => {
    const acked = run([on(0), { type: 'TICK', now: 1_000 }, op('ACK', 1_100)], input);
    expect(acked.context).toMatchObject({ severity: 'major', escalateAt: null });
    expect(stepAlarm(acked, { type: 'TICK', now: 1e9 })).toBeUndefined();
    expect(stepAlarm(acked, off(1_200))?.context.severity).toBe('minor');
  });

  it('no escalateAfterMs: never escalates', () => {
    expect(run([on(0), { type: 'TICK', now: 1e12 }]).context.severity).toBe('major');
  });
});

describe('alarm machine: re-alarm', () => {
  it('acknowledged and still active for reAlarmMs: announced again as unacknowledged', () => {
    const input = { severity: 'major', reAlarmMs: 5_000 } as const;
    const acked = run([on(0), op('ACK', 1_000)], input);
    expect(acked.context.reAlarmAt).toBe(6_000);
    expect(stepAlarm(acked, { type: 'TICK', now: 5_999 })).toBeUndefined();
    expect(stepAlarm(acked, { type: 'TICK', now: 6_000 })).toMatchObject({ state: 'unacknowledged', context: { reAlarmAt: null } });
    expect(run([on(0), op('ACK', 1_000), off(2_000), { type: 'TICK', now: 1e9 }], input).state).toBe('normal');
  });
});

describe('alarm machine: the reason written with each automatic step', () => {
  it('names raise, return, escalation, re-alarm and shelve expiry', () => {
    const reason = (events: AlarmEvent[], last: AlarmEvent, input: AlarmInput = { severity: 'minor', escalateAfterMs: 10, reAlarmMs: 10 }) => {
      const from = run(events, input);
      return stepReason(from, stepAlarm(from, last)!, last);
    };
    expect(reason([], on(0))).toBe('raised');
    expect(reason([on(0)], off(1))).toBe('condition cleared');
    expect(reason([on(0)], { type: 'TICK', now: 10 })).toBe('escalated to major');
    expect(reason([on(0), off(1)], on(2))).toBe('re-alarm');
    expect(reason([on(0), op('ACK', 1)], { type: 'TICK', now: 11 })).toBe('re-alarm');
    expect(reason([on(0), { type: 'SHELVE', now: 1, durationMs: 5 }], { type: 'TICK', now: 6 })).toBe('shelve expired');
    expect(reason([on(0), { type: 'SHELVE', now: 1, oneShot: true }], off(2))).toBe('one-shot shelve ended');
    expect(reason([], op('OUT_OF_SERVICE', 1))).toBe('out of service');
  });
});

describe('alarm machine: the table Lua checks', () => {
  const table = alarmTransitions();

  it('covers every state; leaving shelved, suppressed or out of service may go to normal or unacknowledged', () => {
    expect(Object.keys(table).sort()).toEqual([...ALARM_STATES].sort());
    expect(table.shelved!.UNSHELVE!.sort()).toEqual(['normal', 'unacknowledged']);
    expect(table.suppressed!.UNSUPPRESS!.sort()).toEqual(['normal', 'unacknowledged']);
    expect(table.outOfService!.IN_SERVICE!.sort()).toEqual(['normal', 'unacknowledged']);
    expect(table.normal!.ACK).toBeUndefined();
  });

  it('the states in alarm:active are those that need an operator', () => {
    expect(activeAlarmStates().sort()).toEqual(['acknowledged', 'latched', 'returnedUnack', 'unacknowledged']);
  });

  const anyEvent: fc.Arbitrary<AlarmEvent> = fc.oneof(
    fc.record({
      type: fc.constantFrom(...ALARM_EVENT_TYPES.filter((t) => t !== 'SHELVE')),
      now: fc.integer({ min: 0, max: 10_000 }),
    }) as fc.Arbitrary<AlarmEvent>,
    fc.record({ type: fc.constant('SHELVE' as const), now: fc.integer({ min: 0, max: 10_000 }), durationMs: fc.integer({ min: 1, max: 5_000 }) }),
    fc.record({ type: fc.constant('SHELVE' as const), now: fc.integer({ min: 0, max: 10_000 }), oneShot: fc.constant(true as const) }),
  );

  const alarmConfig = fc.record({
    latch: fc.boolean(),
    escalateAfterMs: fc.option(fc.integer({ min: 1, max: 3_000 }), { nil: null }),
    reAlarmMs: fc.option(fc.integer({ min: 1, max: 3_000 }), { nil: null }),
  });

  /** The events on one clock: each event's `now` is a step forward of up to `stride` ms. */
  const onOneClock = (events: readonly AlarmEvent[], stride: number): AlarmEvent[] => {
    let now = 0;
    return events.map((raw) => {
      now += raw.now % stride;
      return { ...raw, now } as AlarmEvent;
    });
  };

  it('law: every step the machine takes is in the table, and every operator action it refuses is absent from it', () => {
    fc.assert(
      fc.property(alarmConfig, fc.array(anyEvent, { maxLength: 60 }), (cfg, events) => {
        let a = initialAlarm({ severity: 'minor', ...cfg });
        for (const e of onOneClock(events, 500)) {
          const next = stepAlarm(a, e);
          const targets = table[a.state]?.[e.type] ?? [];
          if (next) expect(targets).toContain(next.state);
          else if (!['TICK', 'CONDITION_ON', 'CONDITION_OFF'].includes(e.type)) expect(targets).toEqual([]);
          a = next ?? a;
          // The condition flag agrees with what the state says about it.
          const implied: Partial<Record<AlarmState, boolean>> = {
            normal: false,
            unacknowledged: true,
            acknowledged: true,
            returnedUnack: false,
            latched: false,
          };
          if (implied[a.state] !== undefined) expect(a.context.conditionActive).toBe(implied[a.state]);
        }
      }),
    );
  });

  const direct = directStepOf<AlarmContext, AlarmEvent>(alarmMachine);
  it("law: stepAlarm (its shortcuts, its direct step, its one inert scope) agrees with XState's own transition() on random sequences", () => {
    fc.assert(
      fc.property(alarmConfig, fc.array(anyEvent, { maxLength: 80 }), (cfg, events) => {
        let a = initialAlarm({ severity: 'minor', ...cfg });
        for (const e of onOneClock(events, 700)) {
          const fast = stepAlarm(a, e);
          expect(fast).toEqual(stepAlarmReference(a, e));
          // The direct step answers every step of this machine: the law above checks it, not XState's fallback.
          expect(direct(a.state, a.context, e)).toBeDefined();
          a = fast ?? a;
        }
      }),
      { numRuns: 500 },
    );
  });
});
