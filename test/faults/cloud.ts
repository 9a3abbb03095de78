/**
 * What the cloud link's fault tests share: the link's YAML (short reconnect
 * backoffs), its group in the outbox, a broker that a watcher has a persistent
 * session on and that is then killed (and can be started again on its port
 * and folder), and the seqs a stop left to the next incarnation.
 */
import type { Redis } from 'ioredis';
import { expect } from 'vitest';
import { spawnMosquitto } from '../helpers/mosquitto.js';
import { watchBroker } from '../helpers/mqttWatch.js';
import { sleep } from '../helpers/servers.js';
import type { SuiteContext } from '../helpers/suite.js';

/** A cloud section with one MQTT link `main` to `url`; `extra` adds lines to the link (six spaces in). */
export const cloudYaml = (url: string, extra = '') => `cloud:
  links:
    - id: main
      url: "${url}"
      reconnect: { minBackoffMs: 200, maxBackoffMs: 500 }
${extra}`;

/** The link's group in the outbox: unread (lag) and pending entries. */
export async function linkBacklog(t: Pick<SuiteContext, 'bus'>): Promise<{ lag: number; pending: number } | undefined> {
  const g = (await t.bus.telemetry.outboxStats()).groups.find((x) => x.name === 'cloud:main');
  return g && { lag: g.lag ?? 0, pending: g.pending };
}

/** The seqs held by entries a stop left pending (`cloud:main:inflight`: first seq and count each), sent with them at the next start. */
export const heldSeqs = async (raw: Redis) => (await raw.hvals('cloud:main:inflight')).reduce((n, v) => n + Number(v.split(' ')[1]), 0);

/**
 * A graceful stop with the broker up leaves nothing pending: every batch out was PUBACKed and XACKed before the
 * goodbye, no seq is held in `cloud:main:inflight` for the next start, and the link's group holds no entry.
 */
export async function expectNothingPending(t: Pick<SuiteContext, 'bus' | 'raw'>): Promise<void> {
  expect(await t.raw.hgetall('cloud:main:inflight')).toEqual({});
  expect((await linkBacklog(t))?.pending).toBe(0);
}

/** A broker with a watcher on `topic` (a persistent session, saved), then killed; `back` starts it again on its port and folder. */
export async function killedBroker(t: Pick<SuiteContext, 'cleanups'>, clientId: string, topic = 'voltage/site/data/#') {
  const b = await spawnMosquitto();
  t.cleanups.push(() => b.stop());
  const w = await watchBroker(t.cleanups, b.url, topic, clientId);
  await sleep(1_200); // the session is saved (autosave every second)
  await b.kill();
  return {
    w,
    url: b.url,
    back: async () => {
      const b2 = await spawnMosquitto({ port: b.port, dir: b.dir });
      t.cleanups.push(() => b2.stop());
    },
  };
}
