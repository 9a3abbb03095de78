/**
 * What an actor kind declares, and the tree built from a table of them.
 *
 * A kind (channel, model, rule, gateway; alarm, history, cloud link next)
 * exports one `ActorKind`: the config section its actors come from, the
 * supervisor they run under (its strategy and restart policy), and the child
 * specs it contributes for a site. runtime/kinds.ts lists the kinds in start
 * order; `planTree` turns that table into the supervisor tree, which is both
 * what the registry declares (`voltage status`, the visualizer) and what is
 * started. The tree is declared nowhere else.
 *
 * It never starts anything itself and never knows a kind by name.
 */
import type { BackoffPolicy } from './backoff.js';
import type { ChannelConfig, RuntimeConfig, SiteConfig } from './config/site.js';
import type { Role } from './config/schema.js';
import type { Logger } from './logger.js';
import { redisCall } from './redis/core.js';
import { KEYS } from './redis/keys.js';
import type { Subscriptions } from './redis/subscriptions.js';
import type { VoltageRedis } from './redis/voltageRedis.js';
import type { ActorRegistry } from './registry.js';
import { Supervisor, type ChildSpec, type Strategy, type SupervisorEvent } from './supervisor.js';
import type { Device } from '../actors/channel/device.js';

/** OTP's MaxR/MaxT and the Akka backoff of one supervisor. */
export interface SupervisorPolicy {
  readonly intensity: number;
  readonly periodMs: number;
  readonly backoff: BackoffPolicy;
}

/** What every kind's actors may use: the process's shared connections and options. */
export interface KindDeps {
  readonly redis: VoltageRedis;
  readonly subscriptions: Subscriptions;
  readonly registry: ActorRegistry;
  readonly log: Logger;
  readonly redisUrl: string;
  /** Override of the device of a channel (tests and the benchmark). */
  readonly device?: (channel: ChannelConfig) => Device;
  /** Tokens for the gateway given at start (the demo's), besides the hashed ones of the config. */
  readonly gatewayTokens: ReadonlyArray<{ name: string; role: Role; token: string }>;
  /** An actor that serves on a port says which, once it listens (port 0 in config: any free one). */
  readonly onListening: (actorId: string, port: number) => void;
}

export interface ActorKind {
  /** Written to the registry as the kind of each of its actors. */
  readonly kind: string;
  /** The config section its actors come from. */
  readonly section: keyof SiteConfig;
  /**
   * The supervisor its actors run under, a child of the root. Absent: its
   * actors are children of the root themselves (the gateway: one actor).
   */
  readonly supervisor?: {
    readonly id: string;
    readonly strategy: Strategy;
    policy(runtime: RuntimeConfig): SupervisorPolicy;
  };
  /** Its supervisor is left out of the tree when the site gives the kind no actors (alarms, rules, cloud links: a site may have none). */
  readonly optional?: boolean;
  /** The children it contributes for a site, in start order (none: the kind is absent from the tree). */
  children(site: SiteConfig, deps: KindDeps): readonly ChildSpec[];
  /**
   * The outbox consumer groups the kind reads (a history backend's, a cloud link's), all named with
   * `prefix`. Made before the tree starts: c2m appends to the outbox only once a group exists, so a
   * fresh site's first values wait for a reader that starts late. A group of the prefix that the site
   * no longer names (a link renamed or removed) is destroyed then: nobody would read it, and its
   * unread entries would hold the outbox at its bound, counted as dropped, for ever. `stateKeys`
   * names what the consumer of a group keeps beside it (a link's in-flight seqs, a backend's tier
   * marks), deleted with the group so that a consumer added again under that name starts afresh;
   * counters that must never go back (a link's seq) are not among them.
   */
  readonly outbox?: {
    readonly prefix: string;
    groups(site: SiteConfig): readonly string[];
    stateKeys(group: string): readonly string[];
  };
}

/** One node of the planned tree, as the registry declares it. */
export interface TreeNode {
  readonly id: string;
  /** 'supervisor', or the kind of the actor. */
  readonly kind: string;
  /** '' for the root. */
  readonly parent: string;
  /** Position among its siblings: start order. */
  readonly order: number;
  readonly strategy?: Strategy;
}

export interface TreePlan {
  /** Every node, parents before their children, siblings in start order. */
  readonly nodes: readonly TreeNode[];
  /** Makes the root supervisor (a new tree each call). */
  root(onEvent: (e: SupervisorEvent) => void): Supervisor;
}

export const ROOT_ID = 'root';
/** Kinds start in table order and a failure restarts the kinds after it (models before the channels that feed them). */
export const ROOT_STRATEGY: Strategy = 'rest_for_one';

export function planTree(kinds: readonly ActorKind[], site: SiteConfig, deps: KindDeps): TreePlan {
  const nodes: TreeNode[] = [{ id: ROOT_ID, kind: 'supervisor', parent: '', order: 0, strategy: ROOT_STRATEGY }];
  const makers: Array<(onEvent: (e: SupervisorEvent) => void) => ChildSpec[]> = [];
  for (const k of kinds) {
    // A kind whose config section is absent is not in the tree (no history section: no history supervisor).
    if (site[k.section] === undefined) continue;
    const specs = k.children(site, deps);
    const sup = k.supervisor;
    if (sup && k.optional && specs.length === 0) continue;
    if (sup) {
      // A kind under its own supervisor is in the tree even without actors, as the tree always was.
      nodes.push({ id: sup.id, kind: 'supervisor', parent: ROOT_ID, order: makers.length, strategy: sup.strategy });
      specs.forEach((s, i) => {
        nodes.push({ id: s.id, kind: k.kind, parent: sup.id, order: i });
      });
      const policy = sup.policy(site.runtime);
      makers.push((onEvent) => [Supervisor.asChild(sup.id, () => new Supervisor({ id: sup.id, strategy: sup.strategy, ...policy, onEvent }, specs))]);
    } else {
      for (const s of specs) {
        nodes.push({ id: s.id, kind: k.kind, parent: ROOT_ID, order: makers.length });
        makers.push(() => [s]);
      }
    }
  }
  return {
    nodes,
    root: (onEvent) =>
      new Supervisor(
        {
          id: ROOT_ID,
          strategy: ROOT_STRATEGY,
          intensity: site.runtime.supervisor.intensity,
          periodMs: site.runtime.supervisor.periodMs,
          backoff: site.runtime.supervisor.backoff,
          onEvent,
        },
        makers.flatMap((m) => m(onEvent)),
      ),
  };
}

/**
 * Makes the outbox consumer groups the site's kinds read, and destroys the groups of their
 * prefixes that the site no longer names, with their consumers' state (logged: the entries only
 * they had not read are no longer kept for them). Groups of other names (a consumer outside the
 * runtime) are left alone. An outbox that no group reads any more is deleted: nothing would read
 * or trim what c2m appended to it (it is made again by the next consumer).
 */
export async function syncOutboxGroups(kinds: readonly ActorKind[], site: SiteConfig, redis: VoltageRedis, log: Logger): Promise<void> {
  const wanted = new Set<string>();
  const owners: Array<NonNullable<ActorKind['outbox']>> = [];
  for (const k of kinds) {
    if (!k.outbox) continue;
    owners.push(k.outbox);
    if (site[k.section] !== undefined) for (const g of k.outbox.groups(site)) wanted.add(g);
  }
  for (const g of wanted) await redis.core.ensureGroup(KEYS.outbox, g);
  const { groups } = await redis.telemetry.outboxStats();
  let left = groups.length;
  for (const g of groups) {
    const owner = owners.find((o) => g.name.startsWith(o.prefix));
    if (wanted.has(g.name) || !owner) continue;
    const stale = owner.stateKeys(g.name);
    await redisCall('XGROUP DESTROY', () => {
      const m = redis.core.client.multi().xgroup('DESTROY', KEYS.outbox, g.name).hdel(KEYS.outboxStats, `hold:${g.name}`);
      return (stale.length ? m.del(...stale) : m).exec();
    });
    left--;
    log.warn({ group: g.name, pending: g.pending, unread: g.lag }, `outbox group ${g.name} is read by nothing in this site: removed`);
  }
  if (left === 0) {
    // The stats' size goes with the stream; its drop count stays (a counter).
    const r = await redisCall('DEL outbox', () => redis.core.client.multi().del(KEYS.outbox).hdel(KEYS.outboxStats, 'bytes', 'adds').exec());
    if (r?.[0]?.[1] === 1) log.warn('the outbox has no reader left: deleted');
  }
}
