/**
 * GET /api/v1/rules[/{id}]: each rule's state, counters and (one rule) its last
 * executions. POST /api/v1/rules/{id}/enable and /disable (operator): one step
 * of the rule machine committed with the stored version (the rule's actor
 * re-reads it on its next step), audited in `audit:rules`.
 * POST /api/v1/rules/{id}/evaluate: a dry run over the values in Redis now
 * (inputs, condition, the actions that would be taken); it writes nothing.
 * The gateway has no compiled site: a rule's definition is read from
 * `rule:{id}`, where its actor wrote it, and its expressions compiled here.
 */
import { stepRule } from '../../../machines/ruleMachine.js';
import type { NotifySeverity, RuleAction, RuleAlarmDef, RuleDef, RuleEventTrigger } from '../../config/rules.js';
import { evaluateRule, planActions, RuleInputs } from '../../domain/ruleEvaluation.js';
import { compileExpr } from '../../expr.js';
import { RuleConflictError, type RuleRecord } from '../../redis/rules.js';
import type { VoltageRedis } from '../../redis/voltageRedis.js';
import { ApiError, type Http } from '../http.js';

type StoredAction =
  | { kind: 'control' | 'set'; model: string; name: string; value: string; minIntervalMs: number }
  | { kind: 'alarm'; alarm: string; raise: boolean }
  | { kind: 'notify'; message: string; severity: NotifySeverity };
type StoredEvent =
  | { kind: 'cron'; cron: string; timezone: string | null }
  | { kind: 'alarm'; glob: string }
  | { kind: 'sequence'; steps: string[]; withinMs: number };
interface StoredDefinition {
  id: string;
  enabled: boolean;
  priority: number;
  onChange: string[];
  everyMs: number | null;
  when: string;
  forMs: number;
  cooldownMs: number;
  then: StoredAction[];
  else: StoredAction[];
  inputs: string[];
  event?: StoredEvent | null;
  alarms?: RuleAlarmDef[];
}

/** The rule as its actor stored it, compiled again (its texts were validated when the site was loaded). */
function compiledDefinition(d: StoredDefinition): RuleDef {
  const w = { windows: true };
  const act = (a: StoredAction): RuleAction => {
    if (a.kind === 'alarm' || a.kind === 'notify') return a;
    return { ...a, value: compileExpr(a.value, w) };
  };
  const when = compileExpr(d.when, w);
  const then = d.then.map(act);
  const otherwise = d.else.map(act);
  const ev = d.event ?? null;
  const event: RuleEventTrigger | null = ev?.kind === 'sequence' ? { ...ev, steps: ev.steps.map((x) => compileExpr(x, w)) } : ev;
  const exprs = [
    when,
    ...[...then, ...otherwise].flatMap((a) => (a.kind === 'control' || a.kind === 'set' ? [a.value] : [])),
    ...(event?.kind === 'sequence' ? event.steps : []),
  ];
  return {
    ...d,
    when,
    then,
    else: otherwise,
    event,
    alarms: d.alarms ?? [],
    windows: exprs.flatMap((x) => x.windows),
    models: [...new Set(d.inputs.map((r) => r.split('.')[0]!))],
  };
}

/** A rule as the list, the detail and the `rule/{id}` topic show it. */
export function summary(r: RuleRecord): Record<string, unknown> {
  const d = r.definition as Partial<StoredDefinition> | null;
  return {
    id: r.id,
    state: r.state,
    version: r.version,
    since: r.since,
    priority: d?.priority ?? null,
    when: d?.when ?? null,
    blocked: r.context.blocked,
    holdUntil: r.context.holdUntil,
    cooldownUntil: r.context.cooldownUntil,
    stats: r.stats,
  };
}

export function ruleRoutes(http: Http, redis: VoltageRedis): void {
  const find = async (id: string): Promise<RuleRecord> => {
    const r = await redis.rules.read(id);
    if (!r) throw new ApiError(404, 'NOT_FOUND', `no rule '${id}'`);
    return r;
  };

  http.route('get', '/api/v1/rules', 'viewer', async () => {
    const records = await Promise.all((await redis.rules.ids()).map((id) => redis.rules.read(id)));
    return { status: 200, body: { rules: records.filter((r): r is RuleRecord => r !== undefined).map(summary) } };
  });

  http.route('get', '/api/v1/rules/:id', 'viewer', async ({ params }) => {
    const r = await find(params[0]!);
    const executions = await redis.rules.journal(r.id, 20);
    return { status: 200, body: { ...summary(r), context: r.context, definition: r.definition, executions } };
  });

  for (const action of ['enable', 'disable'] as const) {
    http.route('post', `/api/v1/rules/:id/${action}`, 'operator', async ({ params, caller }) => {
      const who = caller?.name ?? 'unknown';
      const r = await find(params[0]!);
      const to = stepRule(r, { type: action === 'enable' ? 'ENABLE' : 'DISABLE', now: Date.now() });
      if (!to) {
        await redis.rules.audit(who, r.id, action, `unchanged (${r.state})`);
        return { status: 200, body: { id: r.id, state: r.state, changed: false } };
      }
      try {
        await redis.rules.commit({ id: r.id, expectedVersion: r.version, to, ts: Date.now(), who, counter: action === 'enable' ? 'enabled' : 'disabled' });
      } catch (e) {
        if (!(e instanceof RuleConflictError)) throw e;
        await redis.rules.audit(who, r.id, action, 'conflict');
        throw new ApiError(409, 'CONFLICT', `rule '${r.id}' changed meanwhile; try again`);
      }
      await redis.rules.audit(who, r.id, action, to.state);
      return { status: 200, body: { id: r.id, state: to.state, changed: true } };
    });
  }

  http.route('post', '/api/v1/rules/:id/evaluate', 'viewer', async ({ params }) => {
    const r = await find(params[0]!);
    if (!r.definition) throw new ApiError(409, 'NO_DEFINITION', `rule '${r.id}' has no stored definition (its actor has not started)`);
    const def = compiledDefinition(r.definition as StoredDefinition);
    // The windows' rings are the actor's: here a window function sees the value now only.
    const now = Date.now();
    const inputs = new RuleInputs(def);
    for (const model of def.models) {
      for (const [name, v] of await redis.telemetry.modelValues(model))
        inputs.set(`${model}.${name}`, { value: v.value, quality: v.quality ?? 'good' }, Math.min(now, v.ts ?? now));
    }
    const windows = inputs.windowScope(now);
    const e = evaluateRule(def, (ref) => inputs.get(ref), windows);
    const wouldRun = e.blocked !== null ? 'none (blocked)' : e.condition ? 'then' : r.state === 'active' ? 'else' : 'none';
    return {
      status: 200,
      body: {
        id: r.id,
        state: r.state,
        inputs: e.inputs,
        blocked: e.blocked,
        condition: e.condition,
        // What the branches would send with these values; `wouldRun` says which the machine would take (after its `for`).
        then: planActions(def.then, e, windows),
        else: planActions(def.else, e, windows),
        wouldRun,
        ...(def.windows.length > 0 ? { windows: 'computed over the value now only (the recent values are kept by the rule actor)' } : {}),
      },
    };
  });
}
