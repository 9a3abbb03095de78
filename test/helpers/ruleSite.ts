import type { Quality } from '../../runtime/domain/telemetry.js';
import type { VoltageRedis } from '../../runtime/redis/voltageRedis.js';

/**
 * The site the rule integration tests share: one virtual channel with a
 * measurement and an export limit (0–80), the model `gw` over them, and a
 * `grid` model with the given measurements that no channel feeds (the tests
 * set its values, as a device would report them).
 */
export function ruleSite(gridMeasurements: readonly string[]): string {
  return `channels:
  - id: v1
    protocol: virtual
    pollMs: 50
    points:
      - { type: m, id: 1, sim: { kind: constant, value: 1 } }
      - { type: a, id: 1, min: 0, max: 80 }
models:
  - id: grid
    measurements: { ${gridMeasurements.map((m) => `${m}: {}`).join(', ')} }
  - id: gw
    measurements: { U: {} }
    controls: { export_limit: {} }
    mapping: { U: "v1:m:1", export_limit: "v1:a:1" }
`;
}

/** The README's zero-export rule on `ruleSite(['P'])`: fires below -2 held for FOR (replace it), releases to 80. */
export const ZERO_EXPORT = `rules:
  - id: zero-export
    priority: 10
    trigger: { onChange: [grid.P] }
    when: "grid.P < -2"
    for: FOR
    then:
      - control: { model: gw, name: export_limit, value: "max(0, 50 + grid.P)" }
    else:
      - control: { model: gw, name: export_limit, value: 80, minIntervalMs: 0 }
`;

/** `ruleSite(['Q'])` with a sequence rule: grid.Q above 5, then below 1, within WITHIN (replace it) → export_limit 7. */
export const SEQUENCE_SITE = `${ruleSite(['Q'])}rules:
  - id: breaker-then-low
    trigger: { sequence: ["grid.Q > 5", "grid.Q < 1"], within: WITHIN }
    then:
      - control: { model: gw, name: export_limit, value: 7, minIntervalMs: 0 }
`;

/** A value of the grid model as a device would report it (with its quality, published like any other). */
export function setGrid(bus: VoltageRedis, name: string, value: number, quality: Quality = 'good'): Promise<void> {
  return bus.telemetry.modelSet('grid', Date.now(), [{ name, value, quality }]).then(() => undefined);
}
