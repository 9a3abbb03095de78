import { describe, expect, it } from 'vitest';
import { RedisFunctionError } from '../../runtime/errors.js';
import { m2cRefusal } from '../../runtime/redis/commands.js';

describe('m2cRefusal', () => {
  it("reads as an operator's sentence: no Function name or error code, values as sent", () => {
    expect(m2cRefusal(new Error('m2c: EVOLTAGE m2c: 500.000000 is above the maximum 80 of gw.export_limit'))).toBe(
      '500 is above the maximum 80 of gw.export_limit',
    );
    expect(m2cRefusal(new Error('m2c: -12.250000 is below the minimum -10.5 of bess1.P'))).toBe('-12.25 is below the minimum -10.5 of bess1.P');
    expect(m2cRefusal(new RedisFunctionError('m2c', 'no model pv9'))).toBe('no model pv9');
    // Ids and versions are left alone.
    expect(m2cRefusal(new Error('model v1.2.3 has no control x1.000'))).toBe('model v1.2.3 has no control x1.000');
  });
});
