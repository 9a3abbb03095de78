/**
 * History from a simulated Modbus device (issue 13): the simulator serves a
 * counter register over real TCP that steps once a poll, the runtime polls it
 * and keeps history in a private VictoriaMetrics, and GET /api/v1/history
 * gives back every poll's value at the timestamp c2m received it with: the
 * channel's notification (comsrv:mb:update, what c2m wrote) is the reference,
 * taken from before the first poll, and the answer at 1 ms steps holds the
 * same (timestamp, value) pairs, none more, for the channel point and for the
 * model value mapped from it.
 */
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../runtime/config/load.js';
import { sha256 } from '../../runtime/gateway/http.js';
import { freePort } from '../../runtime/redisServer.js';
import { startRuntime } from '../../runtime/runtime.js';
import { startSim } from '../../runtime/sim.js';
import { modbusCommandChannel } from '../helpers/modbusSite.js';
import { eventually, quietLog, sleep, writeSite } from '../helpers/servers.js';
import { privateRedisSuite } from '../helpers/suite.js';
import { forceFlush, privateVictoria } from '../helpers/victoria.js';

const t = privateRedisSuite();
const vm = privateVictoria();

interface Answer {
  timestamps: number[];
  series: Array<{ id: string; values: Array<number | null> }>;
}

describe('history of a simulated Modbus device', () => {
  it('every polled value of a counter register comes back from GET /api/v1/history at its poll timestamp, once', async () => {
    const port = await freePort();
    const site = loadConfig(
      writeSite({
        'site.yaml': `${modbusCommandChannel(port, ['- { type: m, id: 2, modbus: { unit: 1, fn: 3, address: 1 }, sim: { kind: counter, start: 0, step: 1 } }'])}gateway:
  port: 0
  tokens: [ { name: vera, role: viewer, sha256: ${sha256('hv-token')} } ]
models:
  - id: meter
    measurements: { E: {} }
    mapping: { E: "mb:m:2" }
history:
  backends: [ { id: vm, url: "${vm.server.url}" } ]
  batchMaxMs: 50
  maxPoints: 50000
`,
      }),
    );
    // The reference: every poll of m:2 as c2m wrote and published it (`ts`, then a line `type id value [quality]` a point).
    const polls: Array<[number, number]> = [];
    const sub = new Redis(t.server.url);
    t.cleanups.push(() => sub.disconnect());
    sub.on('message', (_channel: string, msg: string) => {
      const [ts, ...lines] = msg.split('\n');
      for (const line of lines) {
        const [type, id, value] = line.split(' ');
        if (type === 'm' && id === '2' && value !== undefined && value !== '') polls.push([Number(ts), Number(value)]);
      }
    });
    await sub.subscribe('comsrv:mb:update');
    // The counter steps once a read (updateMs under the poll period): one new value a poll.
    t.sim = await startSim(site, { updateMs: 20 });
    t.running = await startRuntime(site, { redisUrl: t.server.url, log: quietLog });
    const base = `http://127.0.0.1:${await eventually(() => t.running!.gatewayPort())}`;
    await eventually(() => polls.length >= 30, 15_000);
    await sleep(500);
    const window = polls.slice();
    const from = window[0]![0];
    const to = window.at(-1)![0];

    const query = `/api/v1/history?series=channel/mb/m/2,model/meter/E&from=${from}&to=${to}&step=1ms&agg=last`;
    const stored = (a: Answer, k: number) =>
      a.timestamps.flatMap((ts, i) => (a.series[k]!.values[i] === null ? [] : [[ts, a.series[k]!.values[i]] as [number, number]]));
    const answer = await eventually(
      async () => {
        await forceFlush(vm.server.url);
        const r = await fetch(base + query, { headers: { authorization: 'Bearer hv-token' } });
        if (r.status !== 200) return undefined;
        const a = (await r.json()) as Answer;
        return stored(a, 0).length >= window.length && stored(a, 1).length >= window.length ? a : undefined;
      },
      15_000,
      200,
    );
    expect(answer.series.map((s) => s.id)).toEqual(['channel/mb/m/2', 'model/meter/E']);
    // Each poll once, at the timestamp c2m got, with its value; nothing else in the range.
    expect(stored(answer, 0)).toEqual(window);
    expect(stored(answer, 1)).toEqual(window);
    // The device's counter: one step a poll, from its first value on (none lost, none repeated).
    const values = window.map(([, v]) => v);
    expect(values).toEqual(values.map((_, i) => values[0]! + i));
    expect(values[0]).toBe(0);
  }, 40_000);
});
