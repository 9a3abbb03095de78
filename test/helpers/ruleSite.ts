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
