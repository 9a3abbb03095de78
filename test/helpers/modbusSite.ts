/**
 * The Modbus TCP channel the command tests drive through the in-process
 * simulator (runtime/sim.ts): unit 1 on a given port, a constant measurement
 * and a scaled int16 setpoint, and more points as a test needs.
 */

/** Channel `mb`: m:1 (holding 0, constant 5), a:1 (holding 10, int16, scale 0.1, -100..100), then `more` point lines. */
export function modbusCommandChannel(port: number, more: readonly string[] = []): string {
  return `channels:
  - id: mb
    protocol: modbus-tcp
    port: ${port}
    pollMs: 100
    timeoutMs: 200
    retries: 0
    points:
      - { type: m, id: 1, modbus: { unit: 1, fn: 3, address: 0 }, sim: { kind: constant, value: 5 } }
      - { type: a, id: 1, min: -100, max: 100, scale: 0.1, modbus: { unit: 1, fn: 3, address: 10, dataType: int16 } }
${more.map((p) => `      ${p}\n`).join('')}`;
}
