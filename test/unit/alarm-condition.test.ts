/**
 * Before the alarm machine: thresholds with deadband, on/off-delays with
 * absolute deadlines, quality and staleness, chattering and flood — and the
 * laws they keep on random inputs.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  INITIAL_DELAY_STATE,
  inFlood,
  isChattering,
  rawCondition,
  recordActivation,
  recordNewAlarm,
  stepDelay,
  tickDelay,
  type ConditionChange,
  type ConditionSpec,
  type DelayState,
  type Sample,
} from '../../machines/alarmCondition.js';

const good = (value: number, ts = 0): Sample => ({ value, quality: 'good', ts });
const above: ConditionSpec = { kind: 'above', limit: 45, deadband: 2 };
const below: ConditionSpec = { kind: 'below', limit: 49.8, deadband: 0.1 };

describe('raw conditions', () => {
  it('above with deadband: raised above the limit, cleared only at or below limit - deadband', () => {
    expect(rawCondition(above, false, good(45), 0)).toBe(false);
    expect(rawCondition(above, false, good(45.1), 0)).toBe(true);
    expect(rawCondition(above, true, good(43.5), 0)).toBe(true);
    expect(rawCondition(above, true, good(43), 0)).toBe(false);
  });

  it('below with deadband: raised below the limit, cleared only at or above limit + deadband', () => {
    expect(rawCondition(below, false, good(49.79), 0)).toBe(true);
    expect(rawCondition(below, true, good(49.85), 0)).toBe(true);
    expect(rawCondition(below, true, good(49.9), 0)).toBe(false);
  });

  it('a value that cannot be trusted leaves a threshold condition as it was', () => {
    for (const was of [true, false]) {
      expect(rawCondition(above, was, { value: 99, quality: 'comm-failure', ts: 0 }, 0)).toBe(was);
      expect(rawCondition(above, was, { value: null, quality: 'bad', ts: 0 }, 0)).toBe(was);
      expect(rawCondition(above, was, undefined, 0)).toBe(was);
    }
  });

  it('equals on a signal point', () => {
    const spec: ConditionSpec = { kind: 'equals', value: 1 };
    expect(rawCondition(spec, false, good(1), 0)).toBe(true);
    expect(rawCondition(spec, true, good(0), 0)).toBe(false);
  });

  it('quality: a device that stops answering raises its comm-failure condition', () => {
    const spec: ConditionSpec = { kind: 'quality', qualities: ['comm-failure', 'bad'] };
    expect(rawCondition(spec, false, { value: null, quality: 'comm-failure', ts: 0 }, 0)).toBe(true);
    expect(rawCondition(spec, true, good(3), 0)).toBe(false);
  });

  it('stale: no new value within staleMs', () => {
    const spec: ConditionSpec = { kind: 'stale', staleMs: 5_000 };
    expect(rawCondition(spec, false, good(1, 1_000), 6_000)).toBe(false);
    expect(rawCondition(spec, false, good(1, 1_000), 6_001)).toBe(true);
    expect(rawCondition(spec, false, undefined, 0)).toBe(true);
  });

  it('law: a value moving only inside the deadband never toggles the condition', () => {
    fc.assert(
      fc.property(
        fc.double({ min: -1e6, max: 1e6, noNaN: true }),
        fc.double({ min: 0.001, max: 1e3, noNaN: true }),
        fc.boolean(),
        fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 1, maxLength: 50 }),
        fc.constantFrom('above', 'below'),
        (limit, deadband, start, fractions, kind) => {
          const spec: ConditionSpec = { kind, limit, deadband };
          // Inside the band: (limit - deadband, limit] for above, [limit, limit + deadband) for below.
          let active = start;
          for (const f of fractions) {
            const v = kind === 'above' ? limit - deadband * f * 0.999 : limit + deadband * f * 0.999;
            active = rawCondition(spec, active, good(v), 0);
            expect(active).toBe(start);
          }
        },
      ),
    );
  });
});

const delays = { onDelayMs: 5_000, offDelayMs: 10_000 };

describe('on- and off-delays', () => {
  it('a condition must hold for onDelayMs before CONDITION_ON, and be gone for offDelayMs before CONDITION_OFF', () => {
    let s = stepDelay(INITIAL_DELAY_STATE, true, 1_000, delays);
    expect(s).toEqual({ state: { active: false, raw: true, pendingUntil: 6_000 }, change: null });
    s = stepDelay(s.state, true, 5_999, delays);
    expect(s.change).toBeNull();
    s = tickDelay(s.state, 6_000, delays);
    expect(s.change).toBe('CONDITION_ON');
    s = stepDelay(s.state, false, 7_000, delays);
    expect(s.state.pendingUntil).toBe(17_000);
    expect(tickDelay(s.state, 16_999, delays).change).toBeNull();
    expect(tickDelay(s.state, 17_000, delays).change).toBe('CONDITION_OFF');
  });

  it('a glitch shorter than the on-delay is never seen, and a return cancels the pending change', () => {
    let s = stepDelay(INITIAL_DELAY_STATE, true, 0, delays);
    s = stepDelay(s.state, false, 4_000, delays);
    expect(s.state.pendingUntil).toBeNull();
    expect(tickDelay(s.state, 100_000, delays).change).toBeNull();
  });

  it('zero delays pass the condition straight through', () => {
    expect(stepDelay(INITIAL_DELAY_STATE, true, 1, { onDelayMs: 0, offDelayMs: 0 }).change).toBe('CONDITION_ON');
  });

  it('the deadline is absolute: a state written out and read back (a restart) fires at the same time', () => {
    const s = stepDelay(INITIAL_DELAY_STATE, true, 1_000, delays).state;
    const restored = JSON.parse(JSON.stringify(s)) as DelayState;
    expect(tickDelay(restored, 6_000, delays)).toEqual(tickDelay(s, 6_000, delays));
  });

  it('laws: changes alternate ON/OFF, each one only after its raw condition held for its full delay', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2_000 }),
        fc.integer({ min: 0, max: 2_000 }),
        fc.array(fc.record({ dt: fc.integer({ min: 0, max: 1_500 }), raw: fc.boolean(), tick: fc.boolean() }), { maxLength: 80 }),
        (onDelayMs, offDelayMs, steps) => {
          const d = { onDelayMs, offDelayMs };
          let state = INITIAL_DELAY_STATE;
          let now = 0;
          let last: ConditionChange = 'CONDITION_OFF';
          let rawSince = 0; // when the raw condition last changed
          for (const st of steps) {
            now += st.dt;
            const r = st.tick ? tickDelay(state, now, d) : stepDelay(state, st.raw, now, d);
            if (!st.tick && st.raw !== state.raw) rawSince = now;
            if (r.change) {
              expect(r.change).not.toBe(last);
              last = r.change;
              expect(now - rawSince).toBeGreaterThanOrEqual(r.change === 'CONDITION_ON' ? onDelayMs : offDelayMs);
            }
            expect(r.state.active).toBe(last === 'CONDITION_ON');
            state = r.state;
          }
        },
      ),
    );
  });
});

describe('chattering and flood', () => {
  it('chattering: 3 activations within 60 s by default, not 3 spread wider', () => {
    let t: number[] = [];
    for (const at of [0, 20_000, 50_000]) t = recordActivation(t, at);
    expect(isChattering(t, 50_000)).toBe(true);
    expect(isChattering(t, 60_001)).toBe(false);
    let u: number[] = [];
    for (const at of [0, 30_000, 61_000]) u = recordActivation(u, at);
    expect(isChattering(u, 61_000)).toBe(false);
  });

  it('flood: more than 10 new alarms in 10 minutes by default; 10 is not a flood', () => {
    let t: number[] = [];
    for (let i = 0; i < 10; i++) t = recordNewAlarm(t, i * 1_000);
    expect(inFlood(t, 10_000)).toBe(false);
    t = recordNewAlarm(t, 11_000);
    expect(inFlood(t, 11_000)).toBe(true);
    expect(inFlood(t, 600_000 + 1_000)).toBe(false);
  });

  it('law: the bounded memory answers as a count over every occurrence would, and never grows past its bound', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 12 }),
        fc.integer({ min: 1, max: 10_000 }),
        fc.array(fc.integer({ min: 0, max: 3_000 }), { maxLength: 100 }),
        (count, windowMs, gaps) => {
          const cfg = { count, windowMs };
          let chat: number[] = [];
          let flood: number[] = [];
          const all: number[] = [];
          let now = 0;
          for (const g of gaps) {
            now += g;
            all.push(now);
            chat = recordActivation(chat, now, cfg);
            flood = recordNewAlarm(flood, now, cfg);
            const within = all.filter((x) => x > now - windowMs).length;
            expect(isChattering(chat, now, cfg)).toBe(within >= count);
            expect(inFlood(flood, now, cfg)).toBe(within > count);
            expect(chat.length).toBeLessThanOrEqual(count);
            expect(flood.length).toBeLessThanOrEqual(count + 1);
          }
        },
      ),
    );
  });
});
