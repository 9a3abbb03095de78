/**
 * RuleUpdates: a model's notification is read once for every rule of the process,
 * for the names some rule reads from that model only; a message that is not plain
 * (whitespace, an escape) is parsed in full, as parseUpdate reads it; anything
 * that is not a model update is undefined.
 */
import { describe, expect, it } from 'vitest';
import { RuleUpdates } from '../../actors/rules/ruleUpdates.js';

describe('RuleUpdates', () => {
  it('reads the wanted names once per message for all the rules; the others are left out', () => {
    const updates = new RuleUpdates();
    updates.want('m1', ['p10']);
    updates.want('m1', ['p20', 'p10']);
    const message = '{"ts":1000,"src":"c2m","v":{"p1":1.5,"p10":91.25,"p20":-3},"q":{"p20":"bad","p1":"stale"}}';
    const u = updates.read('m1', message);
    expect(u).toEqual({ ts: 1000, values: { p10: 91.25, p20: -3 }, quality: { p20: 'bad' } });
    // The next rule of the model gets the same reading.
    expect(updates.read('m1', message)).toBe(u);
    expect(updates.read('m1', '{"ts":1100,"src":"calc","v":{"p10":1}}')).toEqual({ ts: 1100, values: { p10: 1 }, quality: undefined });
  });

  it('parses a message that is not plain in full, and gives undefined for one that is not a model update', () => {
    const updates = new RuleUpdates();
    updates.want('m1', ['p10']);
    expect(updates.read('m1', '{ "ts": 5, "src": "c2m", "v": { "p10": 2 } }')).toMatchObject({ ts: 5, values: { p10: 2 } });
    expect(updates.read('m1', 'not json')).toBeUndefined();
    expect(updates.read('m1', '{"ts":5,"src":"other","v":{"p10":2}}')).toBeUndefined();
    // A model no rule reads from: parsed in full.
    expect(updates.read('m2', '{"ts":6,"src":"c2m","v":{"x":1}}')).toMatchObject({ ts: 6, values: { x: 1 } });
  });
});
