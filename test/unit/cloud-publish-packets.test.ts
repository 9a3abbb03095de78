/**
 * A batch's PUBLISH packets in one Buffer: byte for byte what mqtt-packet
 * writes for the same packets (MQTT 3.1.1 and 5), whatever the topic, the
 * payload (multi-byte UTF-8, lengths across the variable-length boundaries)
 * and the packet id. And the in-flight window taken in runs.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { createRequire } from 'node:module';
import { encodePublishes } from '../../actors/cloud/publishPackets.js';
import { InflightWindow } from '../../actors/cloud/window.js';

// mqtt.js's own packet writer (a dependency of mqtt, without types of its own).
const mqttPacket = createRequire(import.meta.url)('mqtt-packet') as { generate(packet: object, opts: { protocolVersion: number }): Buffer };

const reference = (items: ReadonlyArray<{ topic: string; payload: string; messageId: number }>, protocolVersion: 4 | 5) =>
  Buffer.concat(
    items.map((it) =>
      mqttPacket.generate(
        { cmd: 'publish', topic: it.topic, payload: it.payload, qos: 1, messageId: it.messageId, dup: false, retain: false },
        { protocolVersion },
      ),
    ),
  );

describe('encodePublishes', () => {
  it("is byte for byte mqtt-packet's packets, MQTT 3.1.1 and 5", () => {
    const item = fc.record({
      topic: fc.string({ unit: 'binary', minLength: 1, maxLength: 80 }),
      payload: fc.oneof(fc.string({ unit: 'binary', maxLength: 300 }), fc.string({ unit: 'grapheme', maxLength: 40 })),
      messageId: fc.integer({ min: 1, max: 65_535 }),
    });
    fc.assert(
      fc.property(fc.array(item, { maxLength: 12 }), fc.constantFrom(4 as const, 5 as const), (items, v) => {
        const ours = encodePublishes(
          items.map((it) => ({ topic: Buffer.from(it.topic), payload: it.payload, messageId: it.messageId })),
          v,
        );
        expect(ours.equals(reference(items, v))).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('encodes remaining lengths across the one-, two- and three-byte boundaries', () => {
    for (const size of [0, 120, 121, 122, 123, 127, 128, 16_370, 16_378, 16_379, 16_383, 16_384, 70_000]) {
      const items = [{ topic: 'voltage/s/data/m', payload: 'x'.repeat(size), messageId: 7 }];
      for (const v of [4, 5] as const) {
        const ours = encodePublishes([{ topic: Buffer.from(items[0]!.topic), payload: items[0]!.payload, messageId: 7 }], v);
        expect(ours.equals(reference(items, v)), `payload ${size}, MQTT ${v}`).toBe(true);
      }
    }
  });

  it('refuses a topic longer than 65535 bytes', () => {
    expect(() => encodePublishes([{ topic: Buffer.alloc(65_536, 0x61), payload: '', messageId: 1 }], 4)).toThrow(RangeError);
  });
});

describe('InflightWindow', () => {
  it('takes runs of free slots; a waiter wakes only when its run is free, oldest first', async () => {
    const w = new InflightWindow(10);
    expect(w.take(4)).toBe(4);
    expect(w.take(20)).toBe(6);
    expect(w.take(1)).toBe(0);
    let woke = 0;
    const a = w.whenFree(3).then(() => (woke += 1));
    w.release();
    w.release();
    await Promise.resolve();
    expect(woke).toBe(0);
    w.release();
    await a;
    expect(woke).toBe(1);
    expect(w.inFlight).toBe(7);
    expect(w.take(5)).toBe(3);
    // More than the window asks for the whole window.
    const b = w.whenFree(50);
    w.release(10);
    await b;
    expect(w.inFlight).toBe(0);
  });
});
