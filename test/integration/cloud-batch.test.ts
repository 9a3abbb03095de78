/**
 * A run of QoS 1 publishes written in one socket write (actors/cloud/mqttBatch.ts)
 * through the installed mqtt.js, to a real mosquitto: every message arrives,
 * in order, byte for byte; every callback is called once, by mqtt.js's own
 * PUBACK handling, which frees the packet ids (more messages than there are
 * ids go through); a connection ended mid-run fails the callbacks still out.
 * And an MQTT 5 link keeps within the broker's Receive Maximum.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type MqttClient } from 'mqtt';
import { batchClient, publishRun, type Publish } from '../../actors/cloud/mqttBatch.js';
import { tapPubacks } from '../../actors/cloud/pubackTap.js';
import { spawnMosquitto, type Mosquitto } from '../helpers/mosquitto.js';
import { watchBroker } from '../helpers/mqttWatch.js';
import { eventually, quietLog } from '../helpers/servers.js';
import { mqttLinkSchema } from '../../runtime/config/cloud.js';
import { MqttTransport } from '../../actors/cloud/mqttTransport.js';
import type { InflightWindow } from '../../actors/cloud/window.js';
import type { VoltageRedis } from '../../runtime/redis/voltageRedis.js';

let broker: Mosquitto;
const cleanups: Array<() => unknown> = [];

beforeAll(async () => {
  broker = await spawnMosquitto({ persistence: false, maxInflight: 1000 });
});

afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
  await broker.stop();
});

/** A client as a link makes it: with the PUBACK tap (pubackTap.ts) unless `tap` is false. */
async function publisher(protocolVersion: 4 | 5, tap = true): Promise<MqttClient> {
  const client = connect(broker.url, { protocolVersion, clean: true, reconnectPeriod: 0 });
  if (tap) expect(tapPubacks(client)).toBe(true);
  client.on('error', () => undefined);
  await new Promise<void>((r) => client.once('connect', () => r()));
  cleanups.push(() => client.endAsync(true));
  return client;
}

const msg = (topic: string, payload: string): Publish => ({ topic, topicBytes: Buffer.from(topic), payload });

describe('publishRun', () => {
  for (const [v, tap] of [
    [4, false],
    [5, false],
    [4, true],
    [5, true],
  ] as const) {
    it(`MQTT ${v === 4 ? '3.1.1' : '5'}${tap ? ', PUBACKs through the tap' : ''}: a run arrives whole and in order, each callback once without error, mqtt.js's state left empty`, async () => {
      const root = `batch${v}${tap ? 't' : ''}`;
      const { got } = await watchBroker(cleanups, broker.url, `${root}/#`);
      const client = await publisher(v, tap);
      expect(batchClient(client)).toBeDefined();
      const run = Array.from({ length: 300 }, (_, i) => msg(`${root}/m${i % 7}/é`, JSON.stringify({ seq: i + 1, v: 'ü'.repeat(i % 50) })));
      const acks: Array<Error | null | undefined> = [];
      expect(publishRun(client, run, (err) => acks.push(err))).toBe(true);
      await eventually(() => acks.length === 300 && got.length === 300, 10_000);
      expect(acks.filter((e) => e)).toEqual([]);
      expect(got.map((g) => g.topic)).toEqual(run.map((m) => m.topic));
      expect(got.map((g) => JSON.stringify(g.body))).toEqual(run.map((m) => m.payload));
      expect(Object.keys(batchClient(client)!.outgoing)).toEqual([]);
    });
  }

  it("more messages than packet ids: each PUBACK (through the tap, as mqtt.js's own handling) frees its id, so every run goes in one write", async () => {
    const client = await publisher(4);
    let acked = 0;
    let failed = 0;
    for (let r = 0; r < 70; r++) {
      const before = acked;
      const run = Array.from({ length: 1000 }, (_, i) => msg('ids/x', String(r * 1000 + i)));
      expect(publishRun(client, run, (err) => (err ? (failed += 1) : (acked += 1)))).toBe(true);
      await eventually(() => acked - before === 1000, 10_000);
    }
    expect(acked).toBe(70_000);
    expect(failed).toBe(0);
  });

  it('the connection ended mid-run (PUBACKs through the tap): every callback is still called once, those not acknowledged with an error', async () => {
    const client = await publisher(4);
    let calls = 0;
    let errors = 0;
    const run = Array.from({ length: 2000 }, (_, i) => msg('cut/x', 'y'.repeat(200) + i));
    publishRun(client, run, (err) => {
      calls += 1;
      if (err) errors += 1;
    });
    client.end(true);
    await eventually(() => calls === 2000, 5_000);
    await new Promise((r) => setTimeout(r, 300));
    expect(calls).toBe(2000);
    expect(errors).toBeGreaterThan(0);
  });
});

describe('MqttTransport', () => {
  it("MQTT 5: the window is the broker's Receive Maximum when it is below inflight, and a batch larger than it is delivered whole", async () => {
    const small = await spawnMosquitto({ persistence: false, maxInflight: 20 });
    cleanups.push(() => small.stop());
    const { got } = await watchBroker(cleanups, small.url, 'voltage/rm/#');
    const cfg = mqttLinkSchema.parse({ id: 'rm', url: small.url, protocolVersion: 5, inflight: 100 });
    const t = new MqttTransport(cfg, { id: 'rm', dir: '.' }, {} as VoltageRedis, quietLog);
    cleanups.push(() => t.close());
    await t.connect();
    expect((t as unknown as { window: InflightWindow }).window.size).toBe(20);
    const batch = Array.from({ length: 150 }, (_, i) => ({ kind: 'data' as const, model: `m${i % 3}`, channel: '', payload: `{"seq":${i + 1}}` }));
    const { acked } = await t.deliver(batch, () => false);
    await acked;
    await eventually(() => got.filter((g) => g.topic.includes('/data/')).length === 150, 5_000);
    expect(got.filter((g) => g.topic.includes('/data/')).map((g) => g.body.seq)).toEqual(batch.map((_, i) => i + 1));
  });

  it('a run that cannot be published (a topic over 65,535 bytes) fails its batch and gives its window slots back: the next batch goes', async () => {
    const { got } = await watchBroker(cleanups, broker.url, 'voltage/slots/#');
    const cfg = mqttLinkSchema.parse({ id: 'slots', url: broker.url, inflight: 4 });
    const t = new MqttTransport(cfg, { id: 'slots', dir: '.' }, {} as VoltageRedis, quietLog);
    cleanups.push(() => t.close());
    await t.connect();
    const window = () => (t as unknown as { window: InflightWindow }).window;
    const bad = [{ kind: 'data' as const, model: 'x'.repeat(70_000), channel: '', payload: '{"seq":1}' }];
    await expect(t.deliver(bad, () => false)).rejects.toThrow(/65535 bytes/);
    expect(window().inFlight).toBe(0);
    const batch = Array.from({ length: 12 }, (_, i) => ({ kind: 'data' as const, model: 'm', channel: '', payload: `{"seq":${i + 2}}` }));
    const sent = await Promise.race([t.deliver(batch, () => false).then(({ acked }) => acked), new Promise((r) => setTimeout(() => r('stuck'), 3_000))]);
    expect(sent).not.toBe('stuck');
    await eventually(() => got.filter((g) => g.topic === 'voltage/slots/data/m').length === 12, 5_000);
  });
});
