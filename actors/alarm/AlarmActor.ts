/**
 * Binds the alarms of one model to Redis.
 *
 * One actor per model that has alarms, not one per alarm: 10,000 definitions on a
 * site of a few hundred models cost a few hundred actors, one subscription each
 * (to the model's `update` notifications, which already carry the values), and a
 * plain array of definitions evaluated together per notification — an actor per
 * definition would cost 10,000 XState actors, registry entries and handlers.
 * Per model is also where first-out grouping lives (alarms of one model within
 * groupWindowMs), and a fault in one model's expressions restarts that model only.
 *
 * Every value update runs each definition through its raw condition and its
 * on/off-delay filter (machines/alarmCondition.ts), then steps the alarm's
 * machine (machines/alarmMachine.ts, pure) and commits each change with one
 * alarm_commit (compare-and-set). The filter's deadlines are absolute and kept in
 * `alarm:filters`; the machine's deadlines (shelve expiry, escalation, re-alarm)
 * are in its committed context. A TICK is sent only when the next of them is due.
 *
 * On start, restart and resubscribe everything is read again from Redis (the
 * stored alarms, the filters, the model's current values): nothing is raised
 * twice (the machine ignores a CONDITION_ON in a raised state), no ack is lost
 * (the stored state is the truth), no deadline is forgotten (they are stored).
 * The commit comes before the filter is saved: a crash between them re-runs the
 * delay, and the machine drops the repeated change.
 */
import { fromPromise, type AnyActorRef } from 'xstate';
import {
  INITIAL_DELAY_STATE,
  isChattering,
  rawCondition,
  recordActivation,
  stepDelay,
  type DelayState,
  type PointQuality,
  type Sample,
} from '../../machines/alarmCondition.js';
import { alarmEvaluatorMachine, type AlarmEvaluatorEvent } from '../../machines/alarmEvaluatorMachine.js';
import { initialAlarm, stepAlarm, stepReason, type AlarmEvent, type AlarmSnapshotData } from '../../machines/alarmMachine.js';
import { machineChild } from '../../runtime/actorHost.js';
import type { ActorKind, KindDeps } from '../../runtime/actorKind.js';
import type { AlarmDef, AlarmPolicy } from '../../runtime/config/site.js';
import { AlarmRefusedError } from '../../runtime/redis/alarms.js';
import { KEYS } from '../../runtime/redis/keys.js';
import type { ChildSpec } from '../../runtime/supervisor.js';
import { parseUpdate } from '../model/ModelActor.js';

/** How often the actor looks whether a deadline is due (it evaluates only when one is). */
const TICK_MS = 100;
/** Alarms initialised concurrently at load. */
const LOAD_CHUNK = 500;

/** The `id` of an alarm:update message (cjson: no fixed key order, a backslash for an escape). */
const ALARM_ID = /"id":"([^"]*)"/;

/** What the actor keeps of each alarm between evaluations. */
interface Live {
  readonly def: AlarmDef;
  stored: AlarmSnapshotData & { version: number; group: string; chattering: boolean };
  filter: DelayState & { acts: number[] };
  /** The filter as last saved, to save only what changed. */
  savedFilter: string;
  suppressed: boolean;
}

export function alarmActorId(model: string): string {
  return `alarm/${model}`;
}

/** The refs of an expression as scope keys: `name` of the alarm's model, `model.name` of others. */
function scopeKey(model: string, ref: string): string {
  return ref.startsWith(`${model}.`) ? ref.slice(model.length + 1) : ref;
}

export function alarmChild(model: string, defs: readonly AlarmDef[], policy: AlarmPolicy, deps: KindDeps): ChildSpec {
  const id = alarmActorId(model);
  const who = id;
  return machineChild({
    id,
    registry: deps.registry,
    summarize: (c) => ({ alarms: c.alarms, updates: c.updates, evaluations: c.evaluations, commits: c.commits }),
    async build() {
      const log = deps.log.child({ actor: id });
      const samples = new Map<string, Sample>();
      const live = new Map<string, Live>();
      // The models whose values the alarms read: this one and those named in expressions.
      const sources = new Set<string>([model]);
      for (const d of defs) {
        const exprs = [d.test.kind === 'expr' ? d.test.expr : null, d.suppressWhen].filter((e) => e !== null);
        for (const e of exprs) for (const r of e.refs) if (r.includes('.')) sources.add(r.split('.')[0]!);
      }
      let nextDue = Number.POSITIVE_INFINITY;
      /** First-out: the alarm that opened the current group of this model, and when. */
      let leader: { id: string; at: number } | undefined;

      // The samples the definitions read (scope keys): an update of a model with 1,000 values
      // and 100 alarms keeps 100 of them, not 1,000 new objects a poll.
      const read = new Set<string>();
      for (const d of defs) {
        if (d.test.kind === 'point') read.add(d.test.point);
        else for (const r of d.test.expr.refs) read.add(scopeKey(model, r));
        for (const r of d.suppressWhen?.refs ?? []) read.add(scopeKey(model, r));
      }

      const applySample = (source: string, ts: number, values: Readonly<Record<string, number>>, quality: Readonly<Record<string, string>> | undefined) => {
        const key = (name: string) => (source === model ? name : `${source}.${name}`);
        for (const name in values) {
          const k = key(name);
          if (read.has(k)) samples.set(k, { value: values[name]!, quality: (quality?.[name] as PointQuality | undefined) ?? 'good', ts });
        }
        if (quality) {
          for (const name in quality) {
            if (name in values || !read.has(key(name))) continue;
            const prev = samples.get(key(name));
            samples.set(key(name), { value: prev?.value ?? null, quality: quality[name] as PointQuality, ts: prev?.ts ?? ts });
          }
        }
      };

      const load = async () => {
        samples.clear();
        for (const source of sources) {
          for (const [name, r] of await deps.redis.telemetry.modelValues(source)) {
            samples.set(source === model ? name : `${source}.${name}`, { value: r.value, quality: r.quality ?? 'good', ts: r.ts ?? 0 });
          }
        }
        const now = Date.now();
        // The site's flood policy, for GET /api/v1/alarms/stats (the gateway runs in its own process).
        await deps.redis.alarms.setStats({ floodCount: String(policy.flood.count), floodWindowMs: String(policy.flood.windowMs) });
        const filters = await deps.redis.alarms.filters(defs.map((d) => d.id));
        leader = undefined;
        // In chunks of concurrent calls (ioredis pipelines them): 10,000 alarms load in about a second, not one round trip each.
        const loadOne = async (d: AlarmDef, saved: string | undefined) => {
          const init = initialAlarm({ severity: d.severity, latch: d.latch, escalateAfterMs: d.escalateAfterMs, reAlarmMs: d.reAlarmMs });
          const s = await deps.redis.alarms.init({ id: d.id, ts: now, severity: d.severity, context: init.context, definition: JSON.stringify(d.source) });
          const rec = s.created ? undefined : await deps.redis.alarms.get(d.id);
          const stored = saved ? (JSON.parse(saved) as Live['filter']) : { ...INITIAL_DELAY_STATE, acts: [] };
          // What was committed is the truth: a filter saved ahead of (or behind) its commit is brought in line.
          const active = s.context.conditionActive;
          const filter = stored.active === active ? stored : { active, raw: active, pendingUntil: null, acts: stored.acts ?? [] };
          live.set(d.id, {
            def: d,
            stored: { state: s.state, context: s.context, version: s.version, group: rec?.group ?? '', chattering: rec?.chattering ?? false },
            filter,
            savedFilter: JSON.stringify(filter),
            suppressed: false,
          });
          if (rec?.group === d.id && (!leader || rec.since > leader.at)) leader = { id: d.id, at: rec.since };
        };
        for (let i = 0; i < defs.length; i += LOAD_CHUNK) {
          await Promise.all(defs.slice(i, i + LOAD_CHUNK).map((d, j) => loadOne(d, filters[i + j])));
        }
      };

      /** Re-reads one alarm after someone else committed (an operator), or after a conflict. */
      const refresh = async (l: Live) => {
        const r = await deps.redis.alarms.get(l.def.id);
        if (r) l.stored = { state: r.state, context: r.context, version: r.version, group: r.group, chattering: r.chattering };
      };

      /** Steps and commits one event; on a conflict, reads the stored alarm again and retries once. */
      const commit = async (l: Live, event: AlarmEvent, value: number | null): Promise<number> => {
        for (let attempt = 0; attempt < 2; attempt++) {
          const from = { state: l.stored.state, context: l.stored.context };
          const next = stepAlarm(from, event);
          if (!next) return 0;
          // An activation: the condition announced again (a raise, or a re-alarm before anyone acknowledged).
          const activation = event.type === 'CONDITION_ON' && next.state === 'unacknowledged';
          // A new raise opens or joins a first-out group.
          const raised = next.state === 'unacknowledged' && (from.state === 'normal' || from.state === 'latched' || from.state === 'shelved');
          let group = l.stored.group;
          let chattering = l.stored.chattering;
          if (activation) {
            l.filter.acts = recordActivation(l.filter.acts, event.now, l.def.chattering);
            chattering = isChattering(l.filter.acts, event.now, l.def.chattering);
          }
          if (raised) {
            // A leader raised in this same evaluation is still committing (its stored group comes after the await).
            const current =
              leader && event.now - leader.at <= policy.groupWindowMs && (leader.at === event.now || live.get(leader.id)?.stored.group === leader.id)
                ? leader
                : undefined;
            group = current ? current.id : l.def.id;
            if (!current) leader = { id: l.def.id, at: event.now };
          }
          try {
            const version = await deps.redis.alarms.commit({
              id: l.def.id,
              expectedVersion: l.stored.version,
              event: event.type,
              to: next.state,
              severity: next.context.severity,
              context: next.context,
              who,
              why: stepReason(from, next, event),
              value,
              ts: event.now,
              group,
              chattering,
            });
            l.stored = { ...next, version, group: next.state === 'normal' ? '' : group, chattering };
            return 1;
          } catch (e) {
            if (!(e instanceof AlarmRefusedError) || e.refusal !== 'VERSION_CONFLICT') throw e;
            await refresh(l);
          }
        }
        return 0;
      };

      const evaluate = async (): Promise<number> => {
        const now = Date.now();
        let commits = 0;
        let due = Number.POSITIVE_INFINITY;
        const changedFilters = new Map<string, string>();
        // Added after the await (`commits += await …` would read `commits` before it, and lose the others' counts).
        const counted = (n: number) => {
          commits += n;
        };
        // Alarms are independent of each other: their commits go out together (one pipeline on the
        // connection, in this order), not one round trip after another; one alarm's steps stay in order.
        const one = async (l: Live): Promise<void> => {
          const d = l.def;
          let value: number | null = null;
          let raw: boolean;
          if (d.test.kind === 'point') {
            const sample = samples.get(d.test.point);
            value = sample?.value ?? null;
            raw = rawCondition(d.test.spec, l.filter.raw, sample, now);
            if (d.test.spec.kind === 'stale' && sample) due = Math.min(due, sample.ts + d.test.spec.staleMs + 1);
          } else {
            const refs = d.test.expr.refs.map((r) => scopeKey(model, r));
            const bad = refs.some((r) => samples.get(r)?.quality !== 'good');
            const v = d.test.expr.evaluate((r) => samples.get(scopeKey(model, r))?.value ?? undefined);
            raw = bad || !Number.isFinite(v) ? l.filter.raw : v !== 0;
            value = Number.isFinite(v) ? v : null;
          }
          // Suppression first: a condition that arrives with its reason is never announced.
          if (d.suppressWhen) {
            const v = d.suppressWhen.evaluate((r) => samples.get(scopeKey(model, r))?.value ?? undefined);
            const on = Number.isFinite(v) && v !== 0;
            if (on && l.stored.state !== 'suppressed' && l.stored.state !== 'outOfService') counted(await commit(l, { type: 'SUPPRESS', now }, value));
            // Only a suppression this actor made ends with the condition; an operator's stays.
            if (!on && l.stored.state === 'suppressed' && l.suppressed) counted(await commit(l, { type: 'UNSUPPRESS', now }, value));
            l.suppressed = on;
          }
          const step = stepDelay(l.filter, raw, now, { onDelayMs: d.onDelayMs, offDelayMs: d.offDelayMs });
          l.filter = { ...step.state, acts: l.filter.acts };
          if (step.change) counted(await commit(l, { type: step.change, now }, value));
          // A TICK only when one of the machine's deadlines is due: stepping the machine costs more than this test.
          const due0 = l.stored.context;
          if ([due0.escalateAt, due0.reAlarmAt, due0.shelvedUntil].some((t) => t !== null && t <= now)) counted(await commit(l, { type: 'TICK', now }, value));
          const c = l.stored.context;
          for (const t of [l.filter.pendingUntil, c.escalateAt, c.reAlarmAt, c.shelvedUntil]) if (t !== null) due = Math.min(due, t);
          const f = JSON.stringify(l.filter);
          if (f !== l.savedFilter) {
            changedFilters.set(d.id, f);
            l.savedFilter = f;
          }
        };
        const pending: Promise<void>[] = [];
        for (const l of live.values()) pending.push(one(l));
        await Promise.all(pending);
        await deps.redis.alarms.saveFilters(changedFilters);
        nextDue = due;
        return commits;
      };

      const machine = alarmEvaluatorMachine.provide({
        actors: { load: fromPromise(load), evaluate: fromPromise(evaluate) },
        actions: {
          applyUpdate: (_, params) => {
            const u = params.update;
            if (u.type === 'alarms.update') applySample(u.source, u.ts, u.values, u.quality);
          },
        },
      });

      // Subscribed before loading, so that nothing falls between the load and the subscription.
      let target: AnyActorRef | undefined;
      const early: AlarmEvaluatorEvent[] = [];
      const send = (e: AlarmEvaluatorEvent) => {
        if (target) target.send(e);
        else early.push(e);
      };
      const unsubscribe: Array<() => Promise<void>> = [];
      for (const source of sources) {
        unsubscribe.push(
          await deps.subscriptions.on(KEYS.modelUpdate(source), (message) => {
            const u = parseUpdate(source, message);
            if (!u) {
              log.warn({ channel: KEYS.modelUpdate(source) }, 'ignored a notification that is not a model update');
              return;
            }
            send({ type: 'alarms.update', source, ts: u.ts, values: u.values, quality: u.quality });
          }),
        );
      }
      // An operator's commit (or another writer's) moves the stored version: read it again, then evaluate.
      unsubscribe.push(
        await deps.subscriptions.on(KEYS.alarmUpdate, (message) => {
          // Every commit of the site comes here, to every alarm actor: parse only those of this model's alarms.
          const id = ALARM_ID.exec(message)?.[1];
          if (id !== undefined && !id.includes('\\') && !live.has(id)) return;
          let m: { id?: unknown; version?: unknown; who?: unknown };
          try {
            m = JSON.parse(message) as typeof m;
          } catch {
            return;
          }
          const l = typeof m.id === 'string' ? live.get(m.id) : undefined;
          if (!l || m.who === who || typeof m.version !== 'number' || m.version <= l.stored.version) return;
          void refresh(l).then(
            () => send({ type: 'alarms.tick' }),
            (e: unknown) => log.warn({ err: e }, 'could not re-read an alarm'),
          );
        }),
      );
      // Notifications may have been missed while the subscriber was away: read everything again.
      const offReconnect = deps.subscriptions.onReconnect(() => send({ type: 'alarms.resync' }));
      const timer = setInterval(() => {
        if (Date.now() >= nextDue) {
          nextDue = Number.POSITIVE_INFINITY;
          send({ type: 'alarms.tick' });
        }
      }, TICK_MS);

      return {
        machine,
        input: { model, alarms: defs.length },
        attach: (actor: AnyActorRef) => {
          target = actor;
          for (const e of early.splice(0)) actor.send(e);
        },
        dispose: async () => {
          offReconnect();
          clearInterval(timer);
          await Promise.all(unsubscribe.map((u) => u()));
        },
      };
    },
  });
}

/** Alarms: one actor per model with alarms, under their own supervisor; after the models, before the channels. */
export const alarmKind: ActorKind = {
  kind: 'alarm',
  section: 'alarms',
  supervisor: { id: 'alarms', strategy: 'one_for_one', policy: (rt) => rt.models },
  optional: true,
  children: (site, deps) => {
    const byModel = new Map<string, AlarmDef[]>();
    for (const a of site.alarms) {
      const list = byModel.get(a.model) ?? [];
      list.push(a);
      byModel.set(a.model, list);
    }
    return [...byModel].map(([model, defs]) => alarmChild(model, defs, site.alarmPolicy, deps));
  },
};
