/**
 * Binds modelMachine to Redis: loads the model's values (and those of the
 * models its calculations read), learns of changes from the `update`
 * notifications that c2m and model_set publish, and commits calculated values
 * with one model_set call. It never calls a channel actor. A notification
 * that cannot be parsed is logged and skipped.
 */
import { fromPromise, type AnyActorRef } from 'xstate';
import { modelMachine, type ModelUpdate } from '../../machines/modelMachine.js';
import { machineChild } from '../../runtime/actorHost.js';
import type { ActorKind } from '../../runtime/actorKind.js';
import type { ModelDef } from '../../runtime/config/site.js';
import { errorMessage } from '../../runtime/errors.js';
import type { Logger } from '../../runtime/logger.js';
import type { ModelValue, Quality } from '../../runtime/domain/telemetry.js';
import { KEYS } from '../../runtime/redis/keys.js';
import type { Subscriptions } from '../../runtime/redis/subscriptions.js';
import type { VoltageRedis } from '../../runtime/redis/voltageRedis.js';
import type { ActorRegistry } from '../../runtime/registry.js';
import type { ChildSpec } from '../../runtime/supervisor.js';

export interface ModelActorDeps {
  readonly redis: VoltageRedis;
  readonly subscriptions: Subscriptions;
  readonly registry: ActorRegistry;
  readonly log: Logger;
}

const RANK: Readonly<Record<Quality, number>> = { good: 0, stale: 1, bad: 2, 'comm-failure': 3 };

/** The worst of the qualities of a calculation's inputs is the quality of its result. */
export function worstQuality(qs: Iterable<Quality>): Quality {
  let worst: Quality = 'good';
  for (const q of qs) if (RANK[q] > RANK[worst]) worst = q;
  return worst;
}

/**
 * The last notification parsed, per source: every subscriber of one model's
 * updates (its model actor, its alarm actor, each rule reading it) gets the same
 * message in a row, and parses it once between them. The result is read-only.
 */
const lastParsed = new Map<string, { message: string; update: ModelUpdate | undefined }>();

export function parseUpdate(source: string, message: string): ModelUpdate | undefined {
  const last = lastParsed.get(source);
  if (last && last.message === message) return last.update;
  const update = parseUpdateOnce(source, message);
  lastParsed.set(source, { message, update });
  return update;
}

function parseUpdateOnce(source: string, message: string): ModelUpdate | undefined {
  let m: unknown;
  try {
    m = JSON.parse(message);
  } catch {
    return undefined;
  }
  if (typeof m !== 'object' || m === null) return undefined;
  const { ts, src, v, q } = m as { ts?: unknown; src?: unknown; v?: unknown; q?: unknown };
  if (typeof ts !== 'number' || (src !== 'c2m' && src !== 'calc')) return undefined;
  const values = v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, number>) : {};
  const quality = q && typeof q === 'object' && !Array.isArray(q) ? (q as Record<string, string>) : undefined;
  return { type: 'model.update', source, ts, values, quality, origin: src };
}

/** Transient to the machine: retried after a delay, not a restart. */
class TransientError extends Error {
  readonly transient = true;
}

/** What a model actor needs of its model: not its measurements nor its mapping (those live in Redis). */
export type ModelCalcs = Pick<ModelDef, 'id' | 'calculations' | 'dependsOn'>;

export function modelActorId(model: Pick<ModelDef, 'id'>): string {
  return `model/${model.id}`;
}

export function modelChild(def: ModelCalcs, deps: ModelActorDeps): ChildSpec {
  const model: ModelCalcs = { id: def.id, calculations: def.calculations, dependsOn: def.dependsOn };
  const id = modelActorId(model);
  return machineChild({
    id,
    registry: deps.registry,
    summarize: (c) => ({ updates: c.updates, calculations: c.calculations, errors: c.errors, lastError: c.lastError }),
    async build() {
      const log = deps.log.child({ actor: id });
      /** `name` for this model, `model.name` for the others. */
      const values = new Map<string, number>();
      const quality = new Map<string, Quality>();
      const written = new Map<string, string>();
      let latestTs = 0;
      const unsubscribe: Array<() => Promise<void>> = [];
      const keyOf = (source: string, name: string) => (source === model.id ? name : `${source}.${name}`);
      // Only what the calculations read is kept: a model of 1,000 measurements and one
      // calculation over three of them caches three values, not 1,000.
      const needed = new Set<string>();
      for (const c of model.calculations) {
        for (const r of c.expr.refs) needed.add(r.startsWith(`${model.id}.`) ? r.slice(model.id.length + 1) : r);
      }

      /** Keys set by a notification: the initial load must not overwrite them with older values. */
      const fresh = new Set<string>();
      const apply = (u: ModelUpdate) => {
        if (u.ts > latestTs) latestTs = u.ts;
        for (const name in u.values) {
          const k = keyOf(u.source, name);
          if (!needed.has(k)) continue;
          fresh.add(k);
          values.set(k, u.values[name]!);
          quality.set(k, (u.quality?.[name] as Quality | undefined) ?? 'good');
        }
        if (u.quality) {
          for (const name in u.quality) {
            const k = keyOf(u.source, name);
            if (needed.has(k)) quality.set(k, u.quality[name] as Quality);
          }
        }
      };

      const load = async () => {
        for (const source of [model.id, ...model.dependsOn]) {
          const vals = await deps.redis.telemetry.modelValues(source);
          for (const [name, r] of vals) {
            const k = keyOf(source, name);
            if (!needed.has(k) || fresh.has(k)) continue;
            if (r.value !== null) values.set(k, r.value);
            quality.set(k, r.quality ?? 'good');
            if (r.ts !== null && r.ts > latestTs) latestTs = r.ts;
          }
        }
      };

      const calculate = async (): Promise<number> => {
        if (model.calculations.length === 0) return 0;
        const out: ModelValue[] = [];
        for (const c of model.calculations) {
          const refs = c.expr.refs.map((r) => (r.startsWith(`${model.id}.`) ? r.slice(model.id.length + 1) : r));
          if (refs.some((r) => !values.has(r))) continue; // an input has no value yet
          const v = c.expr.evaluate((r) => values.get(r));
          const q: Quality = Number.isFinite(v) ? worstQuality(refs.map((r) => quality.get(r) ?? 'good')) : 'bad';
          const value = Number.isFinite(v) ? v : null;
          if (value !== null) values.set(c.name, value);
          quality.set(c.name, q);
          const stamp = `${value}|${q}`;
          if (written.get(c.name) === stamp) continue;
          out.push({ name: c.name, value, quality: q });
        }
        if (out.length === 0) return 0;
        try {
          await deps.redis.telemetry.modelSet(model.id, latestTs || Date.now(), out);
        } catch (e) {
          throw new TransientError(errorMessage(e));
        }
        for (const v of out) written.set(v.name, `${v.value}|${v.quality}`);
        return out.length;
      };

      const machine = modelMachine.provide({
        actors: { load: fromPromise(load), calculate: fromPromise(calculate) },
        actions: { applyUpdate: (_, params) => apply(params.update) },
      });

      // Subscribe before the machine starts loading, so that no update falls between
      // the load and the subscription; deliver what arrives before `attach` then.
      let target: AnyActorRef | undefined;
      const early: ModelUpdate[] = [];
      if (model.calculations.length > 0) {
        for (const source of [model.id, ...model.dependsOn]) {
          unsubscribe.push(
            await deps.subscriptions.on(KEYS.modelUpdate(source), (message) => {
              const u = parseUpdate(source, message);
              if (!u) {
                log.warn({ channel: KEYS.modelUpdate(source) }, 'ignored a notification that is not a model update');
                return;
              }
              if (u.origin === 'calc' && source === model.id) return; // our own writes
              if (target) target.send(u);
              else early.push(u);
            }),
          );
        }
      }
      const attach = (actor: AnyActorRef) => {
        target = actor;
        for (const u of early.splice(0)) actor.send(u);
      };

      return {
        machine,
        input: { modelId: model.id },
        attach,
        dispose: async () => {
          await Promise.all(unsubscribe.map((u) => u()));
        },
      };
    },
  });
}

/** Models: one actor per model, under their own supervisor; they start before the channels that feed them. */
export const modelKind: ActorKind = {
  kind: 'model',
  section: 'models',
  supervisor: { id: 'models', strategy: 'one_for_one', policy: (rt) => rt.models },
  // The factories keep only what the actors need, not the whole SiteConfig
  // (a 100k-point site's mappings and measurement lists live in Redis, not here).
  children: (site, deps) => site.models.map((m) => modelChild(m, deps)),
};
