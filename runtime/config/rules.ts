/**
 * The `rules` section of a site config: its schema, and its resolution against
 * the site's models (every `model.name` in `when`, in a trigger or in an
 * action's value must exist; a `control` action names a control of its model,
 * a `set` action a measurement that no channel point feeds). Expressions are
 * the calculation language (runtime/expr.ts), compiled once here.
 * Each problem is reported at its file:line:column through `add`.
 */
import { closest } from 'fastest-levenshtein';
import { z } from 'zod';
import { compileExpr, ExprError, type CompiledExpr } from '../expr.js';
import type { ModelDef } from './site.js';

type Path = readonly (string | number)[];
type AddIssue = (path: Path, code: string, message: string, key?: boolean) => void;

const WORD = /^[A-Za-z0-9_-]+$/;
const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** `grid.P`: a model id, a dot, a value name. */
const MODEL_REF = /^[A-Za-z0-9_-]+\.[A-Za-z_][A-Za-z0-9_]*$/;

const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };

/** A duration: ms as a number, or text such as `500ms`, `10s`, `5m`, `1h`. */
export const durationSchema = z
  .union([z.number().int().nonnegative(), z.string().regex(/^\d+(\.\d+)?(ms|s|m|h)$/, 'must be a duration such as 500ms, 10s, 5m or 1h (or a number of ms)')])
  .transform((v) => {
    if (typeof v === 'number') return v;
    const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(v)!;
    return Math.round(Number(m[1]) * UNIT_MS[m[2]!]!);
  });

const modelId = z
  .union([z.string(), z.number().int().nonnegative()])
  .transform((v) => String(v))
  .pipe(z.string().regex(WORD, 'must hold only letters, digits, _ and -'));
const exprText = z
  .union([z.string().min(1), z.number()])
  .transform((v) => String(v))
  .describe("a calculation-language expression (other models' values as model.name), or a number");

const target = {
  model: modelId,
  name: z.string().regex(NAME, 'must start with a letter or _ and hold only letters, digits and _'),
  value: exprText,
};

const actionSchema = z.union([
  z.strictObject({
    control: z
      .strictObject({
        ...target,
        minIntervalMs: z.number().int().nonnegative().default(1_000).describe('at most one command to this control this often (over all rules)'),
      })
      .describe('a command through m2c, tracked to its end'),
  }),
  z.strictObject({ set: z.strictObject(target).describe('a model value that no device writes, such as an operating mode') }),
]);

export const ruleSchema = z.strictObject({
  id: z.string().regex(WORD, 'must hold only letters, digits, _ and -'),
  enabled: z.boolean().default(true),
  priority: z.number().int().default(0).describe('among active rules that target the same control, the highest wins'),
  trigger: z
    .strictObject({
      onChange: z.array(z.string().regex(MODEL_REF, 'must be model.name, e.g. grid.P')).min(1).optional().describe('evaluate when one of these values changes'),
      every: durationSchema.optional().describe('evaluate on this period'),
    })
    .refine((t) => t.onChange !== undefined || t.every !== undefined, { message: 'a trigger needs onChange or every' }),
  when: exprText.describe('the condition, true when not 0'),
  for: durationSchema.default(0).describe('the condition must hold this long before the rule fires'),
  then: z.array(actionSchema).default([]).describe('run when the rule fires'),
  else: z.array(actionSchema).default([]).describe('run when the condition stops holding after the rule fired'),
  cooldownMs: z.number().int().nonnegative().default(0).describe('the rule does not fire again within this long of firing'),
});

export type RuleConfig = z.output<typeof ruleSchema>;

export interface RuleAction {
  readonly kind: 'control' | 'set';
  readonly model: string;
  readonly name: string;
  readonly value: CompiledExpr;
  /** Control actions: the per-control rate limit; 0 for set. */
  readonly minIntervalMs: number;
}

export interface RuleDef {
  readonly id: string;
  readonly enabled: boolean;
  readonly priority: number;
  /** `model.name` values whose change triggers an evaluation. */
  readonly onChange: readonly string[];
  readonly everyMs: number | null;
  readonly when: CompiledExpr;
  readonly forMs: number;
  readonly cooldownMs: number;
  readonly then: readonly RuleAction[];
  readonly else: readonly RuleAction[];
  /** Every `model.name` the rule reads (condition and action values): none may be other than good when it fires. */
  readonly inputs: readonly string[];
  /** The models those inputs belong to (the actor subscribes to their updates). */
  readonly models: readonly string[];
}

/** Checks the rules against the resolved models; returns those that resolved cleanly. */
export function resolveRules(rules: readonly RuleConfig[], models: readonly ModelDef[], add: AddIssue): RuleDef[] {
  const byId = new Map(models.map((m) => [m.id, m]));
  const valuesOf = (m: ModelDef) => [...m.measurements.keys(), ...m.calculations.map((c) => c.name)];
  const seen = new Map<string, number>();
  const out: RuleDef[] = [];

  const checkRef = (ref: string, path: Path, what: string): boolean => {
    const [modelName, valueName] = ref.split('.') as [string, string | undefined];
    const m = byId.get(modelName);
    if (valueName === undefined) {
      add(path, 'UNKNOWN_REF', `${what} reads '${ref}': a rule names values as model.name`);
      return false;
    }
    if (!m) {
      const ids = [...byId.keys()];
      add(
        path,
        'UNKNOWN_REF',
        `${what} reads '${ref}', but there is no model '${modelName}'${ids.length ? `; did you mean '${closest(modelName, ids)}'?` : ''}`,
      );
      return false;
    }
    const known = valuesOf(m);
    if (!known.includes(valueName)) {
      add(
        path,
        'UNKNOWN_REF',
        `${what} reads '${ref}', which model '${modelName}' does not have${known.length ? `; did you mean '${closest(valueName, known)}'?` : ''}`,
      );
      return false;
    }
    return true;
  };

  const compile = (text: string, path: Path, what: string, inputs: Set<string>): CompiledExpr | undefined => {
    let expr: CompiledExpr;
    try {
      expr = compileExpr(text);
    } catch (e) {
      const idx = e instanceof ExprError ? e.index : 0;
      add(path, 'EXPR_SYNTAX', `${what}: ${(e as Error).message} (at character ${idx + 1} of "${text}")`);
      return undefined;
    }
    let ok = true;
    for (const ref of expr.refs) {
      if (checkRef(ref, path, what)) inputs.add(ref);
      else ok = false;
    }
    return ok ? expr : undefined;
  };

  rules.forEach((r, ri) => {
    const at = (...p: Path): Path => ['rules', ri, ...p];
    const first = seen.get(r.id);
    if (first !== undefined) add(at('id'), 'DUPLICATE_ID', `rule id '${r.id}' is used twice (first as rules[${first}])`);
    seen.set(r.id, ri);
    const what = `rule '${r.id}'`;
    const inputs = new Set<string>();
    let ok = true;
    const onChange = r.trigger.onChange ?? [];
    onChange.forEach((ref, i) => {
      if (!checkRef(ref, at('trigger', 'onChange', i), `${what} trigger`)) ok = false;
    });
    const when = compile(r.when, at('when'), `${what} condition`, inputs);
    if (!when) ok = false;

    const actions = (list: RuleConfig['then'], branch: 'then' | 'else'): RuleAction[] =>
      list.flatMap((a, ai): RuleAction[] => {
        const kind = 'control' in a ? 'control' : 'set';
        const t = 'control' in a ? a.control : a.set;
        const path = at(branch, ai, kind);
        const m = byId.get(t.model);
        if (!m) {
          const ids = [...byId.keys()];
          add(
            [...path, 'model'],
            'UNKNOWN_REF',
            `${what} ${branch}: there is no model '${t.model}'${ids.length ? `; did you mean '${closest(t.model, ids)}'?` : ''}`,
          );
          ok = false;
          return [];
        }
        if (kind === 'control' && !m.controls.has(t.name)) {
          const names = [...m.controls.keys()];
          add(
            [...path, 'name'],
            'UNKNOWN_REF',
            `${what} ${branch}: model '${t.model}' has no control '${t.name}'${names.length ? `; did you mean '${closest(t.name, names)}'?` : ' (it has no controls)'}`,
          );
          ok = false;
          return [];
        }
        if (kind === 'set' && (!m.measurements.has(t.name) || m.mapping.has(t.name))) {
          add([...path, 'name'], 'UNKNOWN_REF', `${what} ${branch}: '${t.model}.${t.name}' must be a measurement of its model that no channel point feeds`);
          ok = false;
          return [];
        }
        const value = compile(t.value, [...path, 'value'], `${what} ${branch} value`, inputs);
        if (!value) {
          ok = false;
          return [];
        }
        return [{ kind, model: t.model, name: t.name, value, minIntervalMs: 'control' in a ? a.control.minIntervalMs : 0 }];
      });
    const thenActions = actions(r.then, 'then');
    const elseActions = actions(r.else, 'else');
    if (!ok || !when) return;
    out.push({
      id: r.id,
      enabled: r.enabled,
      priority: r.priority,
      onChange,
      everyMs: r.trigger.every ?? null,
      when,
      forMs: r.for,
      cooldownMs: r.cooldownMs,
      then: thenActions,
      else: elseActions,
      inputs: [...inputs],
      models: [...new Set([...inputs, ...onChange].map((ref) => ref.split('.')[0]!))],
    });
  });
  return out;
}
