/**
 * The WebSocket topics `rule/{id}` (all of them: `rule/*`): a rule's summary
 * as its snapshot, then every committed step (with the execution it
 * journaled, if any), every result of an execution's actions (command ids and
 * their end) and every notify event, in commit order. Fed by `rule:update`,
 * which rule_commit, rule_record and rule_notify publish; the entries are read
 * from their streams. The topic list follows the rules seen in Redis.
 */
import { KEYS } from '../../redis/keys.js';
import type { Subscriptions } from '../../redis/subscriptions.js';
import type { VoltageRedis } from '../../redis/voltageRedis.js';
import { report } from '../../reporter.js';
import type { Http } from '../http.js';
import type { TelemetryFeed } from '../ws.js';
import { summary } from './rules.js';

export const ruleTopic = (id: string): string => `rule/${id}`;

interface RuleUpdate {
  id?: unknown;
  kind?: unknown;
  from?: unknown;
  to?: unknown;
  of?: unknown;
  entry?: unknown;
}

/** Registers the `rule/{id}` topics; returns what stops the feed. */
export async function ruleFeed(http: Http, redis: VoltageRedis, subs: Subscriptions, feed: TelemetryFeed): Promise<() => Promise<void>> {
  const ids = new Set(await redis.rules.ids());
  const snapshot = async (topic: string) => {
    const r = await redis.rules.read(topic.slice('rule/'.length));
    return JSON.stringify({ topic, ts: Date.now(), snapshot: true, rule: r ? summary(r) : null });
  };
  feed.addSource({ topics: () => [...ids].map(ruleTopic), owns: (t) => t.startsWith('rule/'), snapshot });
  let chain: Promise<void> = Promise.resolve();
  return subs.on(KEYS.ruleUpdate, (message) => {
    let m: RuleUpdate;
    try {
      m = JSON.parse(message) as RuleUpdate;
    } catch {
      return;
    }
    if (typeof m.id !== 'string') return;
    const id = m.id;
    ids.add(id);
    const topic = ruleTopic(id);
    if (http.app.numSubscribers(topic) === 0) return;
    const entry = typeof m.entry === 'string' && m.entry !== '' ? m.entry : undefined;
    chain = chain
      .then(async () => {
        const base = { topic, ts: Date.now(), event: m.kind };
        if (m.kind === 'notify') {
          http.app.publish(topic, JSON.stringify({ ...base, notification: entry ? await redis.rules.event(entry) : null }));
          return;
        }
        if (m.kind === 'result') {
          http.app.publish(topic, JSON.stringify({ ...base, of: m.of, result: entry ? ((await redis.rules.entry(entry))?.data ?? null) : null }));
          return;
        }
        const r = await redis.rules.read(id);
        const execution = entry ? ((await redis.rules.entry(entry))?.data ?? null) : null;
        http.app.publish(topic, JSON.stringify({ ...base, from: m.from, to: m.to, rule: r ? summary(r) : null, ...(execution ? { execution } : {}) }));
      })
      .catch((e: unknown) => report(e, { source: 'rule feed', rule: id }));
  });
}
