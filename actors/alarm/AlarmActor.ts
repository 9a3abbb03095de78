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
import { INITIAL_DELAY_STATE, isChattering, rawCondition, recordActivation, stepDelay, type DelayState } from '../../machines/alarmCondition.js';
import { alarmEvaluatorMachine, type AlarmEvaluatorEvent } from '../../machines/alarmEvaluatorMachine.js';
import { initialAlarm, stepAlarm, stepReason, type AlarmEvent, type AlarmSnapshotData } from '../../machines/alarmMachine.js';
import { machineChild } from '../../runtime/actorHost.js';
import type { ActorKind, KindDeps } from '../../runtime/actorKind.js';
import type { AlarmDef, AlarmPolicy } from '../../runtime/config/site.js';
import { AlarmRefusedError } from '../../runtime/redis/alarms.js';
import { KEYS } from '../../runtime/redis/keys.js';
import type { ChildSpec } from '../../runtime/supervisor.js';
import { parseUpdate } from '../model/ModelActor.js';
import { AlarmInputs, exprRef, type PointRef } from './alarmInputs.js';
import { onAlarmNotes } from './alarmNotes.js';

/** How often the actor looks whether a deadline is due (it evaluates only when one is). */
const TICK_MS = 100;
/** Alarms initialised concurrently at load. */
const LOAD_CHUNK = 500;

/** What the actor keeps of each alarm between evaluations. */
interface Live {
  readonly def: AlarmDef;
  stored: AlarmSnapshotData & { version: number; group: string; chattering: boolean };
  filter: DelayState & { acts: number[] };
  /** The filter as last saved, to save only what changed. */
  savedFilter: string;
  suppressed: boolean;
  /** When this alarm must be evaluated even if none of its points changed (a delay, a deadline, staleness). */
  due: number;
}

/** A filter in one object shape (one literal, its fields in-object), whatever it was made from. */
function filterOf(state: DelayState, acts: number[]): Live['filter'] {
  return { active: state.active, raw: state.raw, pendingUntil: state.pendingUntil, acts };
}

export function alarmActorId(model: string): string {
  return `alarm/${model}`;
}

/** The points a definition reads: its point or its expression's refs, and its suppression condition's. */
function readsOf(model: string, d: AlarmDef): PointRef[] {
  const refs = d.test.kind === 'point' ? [{ source: model, name: d.test.point }] : d.test.expr.refs.map((r) => exprRef(model, r));
  for (const r of d.suppressWhen?.refs ?? []) refs.push(exprRef(model, r));
  return refs;
}

/** The earlier of two optional times. */
function earliest(a: number | null, b: number | null): number | null {
  return a === null ? b : b === null || a <= b ? a : b;
}

/** Whether a TICK would find one of the machine's deadlines due. */
function machineDue(c: AlarmSnapshotData['context'], now: number): boolean {
  return (c.escalateAt !== null && c.escalateAt <= now) || (c.reAlarmAt !== null && c.reAlarmAt <= now) || (c.shelvedUntil !== null && c.shelvedUntil <= now);
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
      const live = new Map<string, Live>();
      // Each definition is keyed by its id in the index: an update marks only the definitions that read its points.
      const inputs = new AlarmInputs<string>(
        model,
        defs.map((d) => ({ reader: d.id, refs: readsOf(model, d) })),
      );
      /** A load (or resync) evaluates every definition once. */
      let full = true;
      let nextDue = Number.POSITIVE_INFINITY;
      /** First-out: the alarm that opened the current group of this model, and when. */
      let leader: { id: string; at: number } | undefined;
      /** An expression's scope over the samples: refs as written (`name` or `model.name`), one closure for all. */
      const refKeys = new Map<string, string>();
      for (const d of defs) {
        const exprs = [d.test.kind === 'expr' ? d.test.expr : null, d.suppressWhen].filter((e) => e !== null);
        for (const e of exprs)
          for (const r of e.refs) {
            const p = exprRef(model, r);
            refKeys.set(r, inputs.key(p.source, p.name));
          }
      }
      const sampleOf = (ref: string) => inputs.get(refKeys.get(ref) ?? ref);
      const scope = (ref: string) => sampleOf(ref)?.value ?? undefined;

      const load = async () => {
        inputs.clear();
        full = true;
        for (const source of inputs.sources()) {
          for (const [name, r] of await deps.redis.telemetry.modelValues(source)) {
            inputs.set(source, name, { value: r.value, quality: r.quality ?? 'good', ts: r.ts ?? 0 });
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
          const stored = saved ? (JSON.parse(saved) as Live['filter']) : filterOf(INITIAL_DELAY_STATE, []);
          // What was committed is the truth: a filter saved ahead of (or behind) its commit is brought in line.
          const active = s.context.conditionActive;
          const acts = stored.acts ?? []; // a filter saved before activations were kept has none
          const filter = stored.active === active ? filterOf(stored, acts) : filterOf({ active, raw: active, pendingUntil: null }, acts);
          live.set(d.id, {
            def: d,
            stored: { state: s.state, context: s.context, version: s.version, group: rec?.group ?? '', chattering: rec?.chattering ?? false },
            filter,
            savedFilter: JSON.stringify(filter),
            suppressed: false,
            due: Number.NEGATIVE_INFINITY,
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
            l.stored = { state: next.state, context: next.context, version, group: next.state === 'normal' ? '' : group, chattering };
            return 1;
          } catch (e) {
            if (!(e instanceof AlarmRefusedError) || e.refusal !== 'VERSION_CONFLICT') throw e;
            await refresh(l);
          }
        }
        return 0;
      };

      /** When an alarm must next be evaluated with no new value: a pending delay, a machine deadline, staleness to come. */
      const dueOf = (l: Live, now: number): number => {
        const c = l.stored.context;
        let due = earliest(earliest(l.filter.pendingUntil, c.escalateAt), earliest(c.reAlarmAt, c.shelvedUntil)) ?? Number.POSITIVE_INFINITY;
        const test = l.def.test;
        if (test.kind === 'point' && test.spec.kind === 'stale') {
          // Not yet stale: evaluated when it would become so. Already stale: only a new value changes that.
          const sample = inputs.get(test.point);
          const at = sample ? sample.ts + test.spec.staleMs + 1 : Number.POSITIVE_INFINITY;
          if (at > now && at < due) due = at;
        }
        return due;
      };

      /**
       * The commits one evaluation of an alarm needs, in order: its suppression, the
       * filtered condition's change, then a TICK if one of the machine's deadlines is due.
       */
      const settle = async (l: Live, now: number, value: number | null, suppression: AlarmEvent['type'] | null, change: AlarmEvent['type'] | null) => {
        let n = 0;
        if (suppression) n += await commit(l, { type: suppression, now } as AlarmEvent, value);
        if (change) n += await commit(l, { type: change, now } as AlarmEvent, value);
        if (machineDue(l.stored.context, now)) n += await commit(l, { type: 'TICK', now }, value);
        l.due = dueOf(l, now);
        return n;
      };

      const evaluate = async (): Promise<number> => {
        const now = Date.now();
        const all = full;
        full = false;
        const marked = inputs.takeDirty();
        // Alarms are independent of each other: their commits go out together (one pipeline on the
        // connection, in this order), not one round trip after another; one alarm's steps stay in order.
        const pending: Promise<number>[] = [];
        const stepped: Live[] = [];
        // Only the alarms whose points changed, and those with something due: a condition that did not
        // change gives the same raw condition (deadbands included) and the same delay state again.
        for (const l of live.values()) {
          if (!all && l.due > now && !marked.has(l.def.id)) continue;
          const d = l.def;
          let value: number | null = null;
          let raw: boolean;
          if (d.test.kind === 'point') {
            const sample = inputs.get(d.test.point);
            value = sample?.value ?? null;
            raw = rawCondition(d.test.spec, l.filter.raw, sample, now);
          } else {
            const bad = d.test.expr.refs.some((r) => sampleOf(r)?.quality !== 'good');
            const v = d.test.expr.evaluate(scope);
            raw = bad || !Number.isFinite(v) ? l.filter.raw : v !== 0;
            value = Number.isFinite(v) ? v : null;
          }
          // Suppression first: a condition that arrives with its reason is never announced.
          let suppression: AlarmEvent['type'] | null = null;
          if (d.suppressWhen) {
            const v = d.suppressWhen.evaluate(scope);
            const on = Number.isFinite(v) && v !== 0;
            if (on && l.stored.state !== 'suppressed' && l.stored.state !== 'outOfService') suppression = 'SUPPRESS';
            // Only a suppression this actor made ends with the condition; an operator's stays.
            if (!on && l.stored.state === 'suppressed' && l.suppressed) suppression = 'UNSUPPRESS';
            l.suppressed = on;
          }
          let change: AlarmEvent['type'] | null = null;
          let touched = false;
          const f = l.filter;
          // The usual case, nothing pending and nothing new, allocates nothing.
          if (raw !== f.active || raw !== f.raw || f.pendingUntil !== null) {
            const step = stepDelay(f, raw, now, { onDelayMs: d.onDelayMs, offDelayMs: d.offDelayMs });
            l.filter = filterOf(step.state, f.acts);
            change = step.change;
            touched = true;
          }
          if (suppression || change || machineDue(l.stored.context, now)) {
            touched = true; // a commit may record an activation in the filter
            pending.push(settle(l, now, value, suppression, change));
          } else l.due = dueOf(l, now);
          if (touched) stepped.push(l);
        }
        let commits = 0;
        for (const n of await Promise.all(pending)) commits += n;
        const changedFilters = new Map<string, string>();
        for (const l of stepped) {
          const f = JSON.stringify(l.filter);
          if (f !== l.savedFilter) {
            changedFilters.set(l.def.id, f);
            l.savedFilter = f;
          }
        }
        if (changedFilters.size) await deps.redis.alarms.saveFilters(changedFilters);
        let due = Number.POSITIVE_INFINITY;
        for (const l of live.values()) if (l.due < due) due = l.due;
        nextDue = due;
        return commits;
      };

      const machine = alarmEvaluatorMachine.provide({
        actors: { load: fromPromise(load), evaluate: fromPromise(evaluate) },
        actions: {
          applyUpdate: (_, params) => {
            const e = params.update;
            if (e.type !== 'alarms.update') return;
            // Only the points read, when the message is plain; in full otherwise.
            if (inputs.applyMessage(e.source, e.message)) return;
            const u = parseUpdate(e.source, e.message);
            if (u) inputs.apply(e.source, u.ts, u.values, u.quality);
            else log.warn({ channel: KEYS.modelUpdate(e.source) }, 'ignored a notification that is not a model update');
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
      for (const source of inputs.sources()) {
        unsubscribe.push(await deps.subscriptions.on(KEYS.modelUpdate(source), (message) => send({ type: 'alarms.update', source, message })));
      }
      // An operator's commit (or another writer's) moves the stored version: read it again, then evaluate.
      unsubscribe.push(
        await onAlarmNotes(
          deps.subscriptions,
          defs.map((d) => d.id),
          (m) => {
            const l = live.get(m.id);
            if (!l || m.who === who || m.version <= l.stored.version) return;
            void refresh(l).then(
              () => {
                inputs.mark(l.def.id);
                send({ type: 'alarms.tick' });
              },
              (e: unknown) => log.warn({ err: e }, 'could not re-read an alarm'),
            );
          },
        ),
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
