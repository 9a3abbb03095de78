/**
 * The PUBACK tap (actors/cloud/pubackTap.ts) over a stream cut anywhere:
 * every plain PUBACK for a publish mqtt.js holds is answered once, through
 * mqtt.js's own method; every other packet reaches the parser whole, byte
 * for byte, in order; a malformed length hands everything on untouched.
 */
import fc from 'fast-check';
import { PassThrough, Writable } from 'node:stream';
import type { MqttClient } from 'mqtt';
import { describe, expect, it } from 'vitest';
import { tapPubacks } from '../../actors/cloud/pubackTap.js';
import { remainingLength } from '../bench/rawSubscriber.js';

/** A fake mqtt.js client: a connection piped into a parser that keeps its bytes, `outgoing` holding the given publishes. */
function fakeClient(held: Iterable<number>) {
  const stream = new PassThrough();
  const parsed: Buffer[] = [];
  const parser = new Writable({
    write(chunk: Buffer, _enc, done) {
      parsed.push(chunk);
      done();
    },
  });
  stream.pipe(parser);
  const answered: number[] = [];
  const outgoing: Record<number, { cmd: string; cb: () => void }> = {};
  for (const id of held) outgoing[id] = { cmd: 'publish', cb: () => answered.push(id) };
  const client = {
    stream,
    outgoing,
    disconnecting: false,
    emit: () => true,
    _removeOutgoingAndStoreMessage(id: number, cb: () => void) {
      delete outgoing[id];
      cb();
    },
  };
  return { client: client as unknown as MqttClient, stream, parsed, answered, outgoing };
}

const flush = () => new Promise((r) => setImmediate(r));

describe('PUBACK tap', () => {
  it('property: cut anywhere, held PUBACKs are answered in order and every other packet reaches the parser whole', async () => {
    const packet = fc.oneof(
      fc.record({ kind: fc.constant('puback' as const), id: fc.integer({ min: 1, max: 40 }) }),
      // A PUBACK with a reason code (MQTT 5), a PINGRESP, a PUBLISH of some size, a SUBACK.
      fc.record({
        kind: fc.constant('other' as const),
        bytes: fc.oneof(
          fc.integer({ min: 1, max: 40 }).map((id) => [0x40, 3, 0, id, 0x87]),
          fc.constant([0xd0, 0]),
          fc.integer({ min: 0, max: 300 }).map((n) => [0x30, ...remainingLength(n + 3), 0, 1, 0x61, ...Array.from({ length: n }, (_, i) => i % 256)]),
          fc.integer({ min: 1, max: 40 }).map((id) => [0x90, 3, 0, id, 1]),
        ),
      }),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.array(packet, { maxLength: 60 }),
        fc.uniqueArray(fc.integer({ min: 1, max: 40 }), { maxLength: 30 }),
        fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 20 }),
        async (packets, heldIds, cuts) => {
          const f = fakeClient(heldIds);
          expect(tapPubacks(f.client)).toBe(true);
          const held = new Set(heldIds);
          const expectAnswered: number[] = [];
          const expectParsed: number[] = [];
          const wire: number[] = [];
          for (const p of packets) {
            if (p.kind === 'puback') {
              const bytes = [0x40, 2, 0, p.id];
              wire.push(...bytes);
              if (held.delete(p.id)) expectAnswered.push(p.id);
              else expectParsed.push(...bytes);
            } else {
              wire.push(...p.bytes);
              expectParsed.push(...p.bytes);
            }
          }
          const buf = Buffer.from(wire);
          for (let at = 0, k = 0; at < buf.length; k++) {
            const n = cuts[k % cuts.length]!;
            f.stream.write(buf.subarray(at, at + n));
            at += n;
          }
          await flush();
          expect(f.answered).toEqual(expectAnswered);
          expect([...Buffer.concat(f.parsed)]).toEqual(expectParsed);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('a malformed remaining length: that byte and every one after it go to the parser as they came', async () => {
    const f = fakeClient([7]);
    tapPubacks(f.client);
    f.stream.write(Buffer.from([0x40, 2, 0, 7, 0x30, 0xff, 0xff, 0xff, 0xff, 0x01]));
    f.stream.write(Buffer.from([0x40, 2, 0, 9]));
    await flush();
    expect(f.answered).toEqual([7]);
    expect([...Buffer.concat(f.parsed)]).toEqual([0x30, 0xff, 0xff, 0xff, 0xff, 0x01, 0x40, 2, 0, 9]);
  });

  it('a parser that is behind pauses the connection until it drains, and gets every byte in order', async () => {
    const f = fakeClient([]);
    // A parser that takes one chunk at a time, each finished only when the test says so.
    const parsed: Buffer[] = [];
    const pending: (() => void)[] = [];
    const slow = new Writable({
      highWaterMark: 8,
      write(chunk: Buffer, _enc, done) {
        parsed.push(chunk);
        pending.push(done);
      },
    });
    f.stream.unpipe();
    f.stream.pipe(slow);
    expect(tapPubacks(f.client)).toBe(true);
    const publish = (i: number) => Buffer.from([0x30, 5, 0, 1, 0x61, i, i]);
    for (let i = 0; i < 10; i++) f.stream.write(publish(i));
    await flush();
    expect(f.stream.isPaused()).toBe(true);
    for (let k = 0; k < 100 && (pending.length > 0 || f.stream.readableLength > 0); k++) {
      for (const done of pending.splice(0)) done();
      await flush();
    }
    expect(f.stream.isPaused()).toBe(false);
    expect([...Buffer.concat(parsed)]).toEqual([...Buffer.concat(Array.from({ length: 10 }, (_, i) => publish(i)))]);
  });

  it('not installed when the client is not as mqtt.js 5 makes it', () => {
    const f = fakeClient([]);
    expect(tapPubacks({ ...(f.client as unknown as object), _removeOutgoingAndStoreMessage: undefined } as unknown as MqttClient)).toBe(false);
    f.stream.unpipe();
    expect(tapPubacks(f.client)).toBe(false);
  });
});
