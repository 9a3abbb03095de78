/**
 * A cloud link as a supervised actor: cloudMachine bound to a CloudLink, on a
 * Redis connection of its own (XREADGROUP BLOCK holds a connection while it
 * waits), one per configured link, under the `cloud` supervisor.
 *
 * Besides the machine, a monitor runs every second whether the broker answers
 * or not: it bounds the link's backlog (CloudLink.monitor) and reports the
 * counters to the machine (PROGRESS), whence `voltage status` and /metrics.
 */
import { fromCallback, fromPromise, type AnyActorRef } from 'xstate';
import { cloudMachine, type UplinkEvent } from '../../machines/cloudMachine.js';
import type { ActorKind, KindDeps } from '../../runtime/actorKind.js';
import { machineChild } from '../../runtime/actorHost.js';
import { backoffDelay, type BackoffPolicy } from '../../runtime/backoff.js';
import type { CloudLinkConfig } from '../../runtime/config/cloud.js';
import type { Logger } from '../../runtime/logger.js';
import { openRedis } from '../../runtime/redis/connect.js';
import { KEYS } from '../../runtime/redis/keys.js';
import type { ChildSpec } from '../../runtime/supervisor.js';
import { CloudLink, type CloudSite } from './CloudLink.js';

const MONITOR_MS = 1_000;

export function cloudActorId(link: string): string {
  return `cloud/${link}`;
}

/** cloudMachine bound to a link: what cloudChild runs, and what tests run without a supervisor. */
export function provideCloudMachine(link: CloudLink, policy: BackoffPolicy, log: Logger) {
  return cloudMachine.provide({
    actors: {
      connect: fromPromise(() => link.connect()),
      uplink: fromCallback<UplinkEvent, { link: string }>(({ sendBack }) => link.uplink(sendBack)),
    },
    delays: {
      retryDelay: ({ context }) => {
        if (context.attempts === 0) return 0;
        const ms = backoffDelay(policy, context.attempts - 1);
        log.warn({ attempt: context.attempts, delayMs: ms, err: context.lastError }, `cloud link: connecting again in ${ms} ms`);
        return ms;
      },
    },
  });
}

export function linkPolicy(cfg: CloudLinkConfig): BackoffPolicy {
  return { minBackoffMs: cfg.reconnect.minBackoffMs, maxBackoffMs: cfg.reconnect.maxBackoffMs, randomFactor: 0.2, resetBackoffAfterMs: 0 };
}

/** Reports the link's counters to its actor every second (and bounds its backlog); returns its stop. */
export function startMonitor(link: CloudLink, actor: AnyActorRef, log: Logger): () => void {
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    link
      .monitor()
      .then((stats) => actor.send({ type: 'PROGRESS', stats }))
      .catch((e: unknown) => log.debug({ err: e }, 'cloud link: could not measure its backlog'))
      .finally(() => {
        busy = false;
      });
  }, MONITOR_MS);
  timer.unref();
  return () => clearInterval(timer);
}

export function cloudChild(cfg: CloudLinkConfig, site: CloudSite, deps: KindDeps): ChildSpec {
  const id = cloudActorId(cfg.id);
  let stopMonitor: () => void = () => undefined;
  return machineChild({
    id,
    registry: deps.registry,
    summarize: (c) => ({
      seq: c.seq,
      published: c.published,
      resent: c.resent,
      lag: c.lag,
      dropped: c.dropped,
      notTaken: c.notTaken,
      refused: c.refused,
      lastRefusal: c.lastRefusal,
      connects: c.connects,
      lastError: c.lastError,
    }),
    async build() {
      const log = deps.log.child({ actor: id });
      const redis = openRedis(deps.redisUrl, log, id);
      // XACKs on a connection of their own: on the reading one they would wait behind XREADGROUP BLOCK.
      const acks = openRedis(deps.redisUrl, log, `${id}/ack`);
      const link = new CloudLink({ read: deps.redis.onConnection(redis), ack: deps.redis.onConnection(acks) }, deps.redis, cfg, site, log);
      // The group first: c2m writes the outbox only once a consumer group exists.
      await link.ensureGroup();
      return {
        machine: provideCloudMachine(link, linkPolicy(cfg), log),
        input: { link: cfg.id },
        attach: (actor) => {
          stopMonitor = startMonitor(link, actor, log);
        },
        dispose: async () => {
          stopMonitor();
          await link.close();
          redis.disconnect();
          acks.disconnect();
        },
      };
    },
  });
}

export const cloudKind: ActorKind = {
  kind: 'cloud',
  section: 'cloud',
  supervisor: { id: 'cloud', strategy: 'one_for_one', policy: (rt) => rt.supervisor },
  optional: true,
  outbox: {
    prefix: KEYS.cloudGroup(''),
    groups: (site) => (site.cloud?.links ?? []).map((l) => KEYS.cloudGroup(l.id)),
    // Not its seq: a link added again under the name numbers on from where it stopped, as its subscribers expect.
    stateKeys: (group) => [KEYS.cloudInflight, KEYS.cloudRefusing, KEYS.cloudLast].map((key) => key(group.slice(KEYS.cloudGroup('').length))),
  },
  children: (site, deps) => (site.cloud?.links ?? []).map((l) => cloudChild(l, { id: site.runtime.site, dir: site.dir }, deps)),
};
