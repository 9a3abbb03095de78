/**
 * The `rules` section of a site config: its schema, and its resolution against
 * the site's models (every `model.name` in `when`, in a trigger or in an
 * action's value must exist; a `control` action names a control of its model,
 * a `set` action a measurement that no channel point feeds). Expressions are
 * the calculation language (runtime/expr.ts), compiled once here.
 * Each problem is reported at its file:line:column through `add`.
 */
import { Cron } from 'croner';
import { closest } from 'fastest-levenshtein';
import { z } from 'zod';
import { SEVERITIES, type Severity } from '../../machines/alarmMachine.js';
import { compileExpr, ExprError, type CompiledExpr, type WindowRef } from '../expr.js';
import { ALARM_ID_PATTERN } from './alarms.js';
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
  z.strictObject({
    alarm: z
      .strictObject({
        id: z.string().regex(ALARM_ID_PATTERN, 'must be words of letters, digits, _ and - joined by dots, e.g. site.export_limited'),
        clear: z.boolean().default(false).describe('clear the alarm (its condition returns to normal) rather than raise it'),
        severity: z.enum(SEVERITIES).optional().describe("the rule alarm's severity (default minor); give it once"),
        message: z.string().min(1).optional().describe("the rule alarm's text; give it once"),
      })
      .describe('raise or clear a rule alarm: an alarm of its own, listed and acknowledged like the others'),
  }),
  z.strictObject({
    notify: z
      .strictObject({
        message: z.string().min(1).describe('the text; {model.name} is replaced by that value'),
        severity: z.enum(['info', ...SEVERITIES]).default('info'),
      })
      .describe('an event to rule:events and the outbox (the cloud links carry it)'),
  }),
]);

export const ruleSchema = z.strictObject({
  id: z.string().regex(WORD, 'must hold only letters, digits, _ and -'),
  enabled: z.boolean().default(true),
  priority: z.number().int().default(0).describe('among active rules that target the same control, the highest wins'),
  trigger: z
    .strictObject({
      onChange: z.array(z.string().regex(MODEL_REF, 'must be model.name, e.g. grid.P')).min(1).optional().describe('evaluate when one of these values changes'),
      every: durationSchema.optional().describe('evaluate on this period'),
      cron: z.string().min(1).optional().describe('fire at these times (minute hour day-of-month month day-of-week), e.g. "0 7 * * 1-5"'),
      timezone: z.string().min(1).optional().describe("the cron's time zone (IANA name); default the box's"),
      alarm: z
        .string()
        .regex(/^[A-Za-z0-9_.*-]+$/, 'must be an alarm id or a glob such as bess1.*')
        .optional()
        .describe('fire on every state change of a matching alarm'),
      sequence: z.array(exprText).min(2).optional().describe('fire when these conditions become true in this order'),
      within: durationSchema.optional().describe("the sequence's window, from its first condition"),
    })
    .superRefine((t, ctx) => {
      const events = [t.cron, t.alarm, t.sequence].filter((x) => x !== undefined).length;
      const values = t.onChange !== undefined || t.every !== undefined;
      if (events === 0 && !values) ctx.addIssue({ code: 'custom', message: 'a trigger needs onChange, every, cron, alarm or sequence' });
      if (events > 1 || (events === 1 && values))
        ctx.addIssue({ code: 'custom', message: 'a trigger is either on values (onChange, every) or one event (cron, alarm or sequence)' });
      if ((t.sequence === undefined) !== (t.within === undefined))
        ctx.addIssue({
          code: 'custom',
          message: 'a sequence needs within (its window), and within belongs to a sequence',
          path: [t.sequence ? 'sequence' : 'within'],
        });
      if (t.timezone !== undefined && t.cron === undefined) ctx.addIssue({ code: 'custom', message: 'timezone belongs to a cron trigger', path: ['timezone'] });
    }),
  when: exprText.optional().describe('the condition, true when not 0 (an event trigger: also checked when the event comes; default true)'),
  for: durationSchema.default(0).describe('the condition must hold this long before the rule fires'),
  then: z.array(actionSchema).default([]).describe('run when the rule fires'),
  else: z.array(actionSchema).default([]).describe('run when the condition stops holding after the rule fired'),
  cooldownMs: z.number().int().nonnegative().default(0).describe('the rule does not fire again within this long of firing'),
});

export type RuleConfig = z.output<typeof ruleSchema>;

/** A control command or a model value set. */
export interface RuleTargetAction {
  readonly kind: 'control' | 'set';
  readonly model: string;
  readonly name: string;
  readonly value: CompiledExpr;
  /** Control actions: the per-control rate limit; 0 for set. */
  readonly minIntervalMs: number;
}

/** Raise or clear a rule alarm (the alarm is defined by the rule: RuleDef.alarms). */
export interface RuleAlarmAction {
  readonly kind: 'alarm';
  readonly alarm: string;
  readonly raise: boolean;
}

export type NotifySeverity = 'info' | Severity;

/** An event to rule:events and the outbox; `{model.name}` in the message is that value. */
export interface RuleNotifyAction {
  readonly kind: 'notify';
  readonly message: string;
  readonly severity: NotifySeverity;
}

export type RuleAction = RuleTargetAction | RuleAlarmAction | RuleNotifyAction;

/** A rule alarm: an alarm definition of its own (alarm:{id}), raised and cleared by one rule. */
export interface RuleAlarmDef {
  readonly id: string;
  readonly rule: string;
  readonly severity: Severity;
  readonly message: string;
}

/** What fires an event-triggered rule (a pulse: the `then` actions, if `when` holds at that moment). */
export type RuleEventTrigger =
  | { readonly kind: 'cron'; readonly cron: string; readonly timezone: string | null }
  | { readonly kind: 'alarm'; readonly glob: string }
  | { readonly kind: 'sequence'; readonly steps: readonly CompiledExpr[]; readonly withinMs: number };

const MESSAGE_REF = /\{([A-Za-z0-9_-]+\.[A-Za-z_][A-Za-z0-9_]*)\}/g;

/** A notify message with `{model.name}` replaced by the values (`-` for none). */
export function renderMessage(message: string, value: (ref: string) => number | null | undefined): string {
  return message.replace(MESSAGE_REF, (_m, ref: string) => {
    const v = value(ref);
    return v === null || v === undefined ? '-' : String(Math.round(v * 1000) / 1000);
  });
}

/** `bess1.*` → a test for alarm ids (`*` is any run of characters). */
export function alarmGlob(glob: string): (id: string) => boolean {
  const re = new RegExp(`^${glob.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replaceAll('*', '.*')}$`);
  return (id) => re.test(id);
}

export interface RuleDef {
  readonly id: string;
  readonly enabled: boolean;
  readonly priority: number;
  /** `model.name` values whose change triggers an evaluation. */
  readonly onChange: readonly string[];
  readonly everyMs: number | null;
  /** An event trigger (cron, alarm, sequence); null: the rule follows its condition over time. */
  readonly event: RuleEventTrigger | null;
  readonly when: CompiledExpr;
  readonly forMs: number;
  readonly cooldownMs: number;
  readonly then: readonly RuleAction[];
  readonly else: readonly RuleAction[];
  /** Every `model.name` the rule reads (condition and action values): none may be other than good when it fires. */
  readonly inputs: readonly string[];
  /** The models those inputs belong to (the actor subscribes to their updates). */
  readonly models: readonly string[];
  /** The window functions read (the actor keeps a ring of recent values for each of their points). */
  readonly windows: readonly WindowRef[];
  /** The rule alarms this rule raises and clears. */
  readonly alarms: readonly RuleAlarmDef[];
}

/** Checks the rules against the resolved models and the site's alarm ids; returns those that resolved cleanly. */
export function resolveRules(rules: readonly RuleConfig[], models: readonly ModelDef[], add: AddIssue, alarmIds: ReadonlySet<string> = new Set()): RuleDef[] {
  const byId = new Map(models.map((m) => [m.id, m]));
  const valuesOf = (m: ModelDef) => [...m.measurements.keys(), ...m.calculations.map((c) => c.name)];
  const seen = new Map<string, number>();
  /** Rule alarm id → the rule that owns it. */
  const alarmOwner = new Map<string, string>();
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

  const compile = (text: string, path: Path, what: string, inputs: Set<string>, windows: WindowRef[]): CompiledExpr | undefined => {
    let expr: CompiledExpr;
    try {
      expr = compileExpr(text, { windows: true });
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
    windows.push(...expr.windows);
    return ok ? expr : undefined;
  };

  rules.forEach((r, ri) => {
    const at = (...p: Path): Path => ['rules', ri, ...p];
    const first = seen.get(r.id);
    if (first !== undefined) add(at('id'), 'DUPLICATE_ID', `rule id '${r.id}' is used twice (first as rules[${first}])`);
    seen.set(r.id, ri);
    const what = `rule '${r.id}'`;
    const inputs = new Set<string>();
    const windows: WindowRef[] = [];
    let ok = true;
    const t = r.trigger;
    const onChange = t.onChange ?? [];
    onChange.forEach((ref, i) => {
      if (!checkRef(ref, at('trigger', 'onChange', i), `${what} trigger`)) ok = false;
    });

    let event: RuleEventTrigger | null = null;
    if (t.cron !== undefined) {
      try {
        new Cron(t.cron, { paused: true, ...(t.timezone ? { timezone: t.timezone } : {}) }).nextRun();
        event = { kind: 'cron', cron: t.cron, timezone: t.timezone ?? null };
      } catch (e) {
        add(at('trigger', 'cron'), 'BAD_CRON', `${what} trigger: '${t.cron}' is not a cron pattern (minute hour day month weekday): ${(e as Error).message}`);
        ok = false;
      }
    } else if (t.alarm !== undefined) {
      event = { kind: 'alarm', glob: t.alarm };
    } else if (t.sequence !== undefined && t.within !== undefined) {
      const steps = t.sequence.map((text, i) => compile(text, at('trigger', 'sequence', i), `${what} sequence step ${i + 1}`, inputs, windows));
      if (t.within <= 0) {
        add(at('trigger', 'within'), 'BAD_WINDOW', `${what} trigger: a sequence's window must be longer than 0`);
        ok = false;
      }
      if (steps.every((x) => x !== undefined)) event = { kind: 'sequence', steps, withinMs: t.within };
      else ok = false;
    }
    const eventTrigger = t.cron !== undefined || t.alarm !== undefined || t.sequence !== undefined;
    if (!eventTrigger && r.when === undefined) {
      add(at(), 'MISSING_WHEN', `${what}: a rule triggered by values needs a condition (when)`);
      ok = false;
    }
    if (event !== null && r.for > 0) {
      add(at('for'), 'EVENT_FOR', `${what}: a rule fired by an event (${event.kind}) takes no 'for' (a condition that must hold needs onChange or every)`);
      ok = false;
    }
    if (event !== null && r.else.length > 0) {
      add(at('else'), 'EVENT_ELSE', `${what}: a rule fired by an event (${event.kind}) has no 'else' (there is no condition to stop holding)`);
      ok = false;
    }
    const when = compile(r.when ?? '1', at('when'), `${what} condition`, inputs, windows);
    if (!when) ok = false;

    const alarmDefs = new Map<string, { severity?: Severity; message?: string }>();
    const actions = (list: RuleConfig['then'], branch: 'then' | 'else'): RuleAction[] =>
      list.flatMap((a, ai): RuleAction[] => {
        if ('alarm' in a) {
          const path = at(branch, ai, 'alarm');
          const x = a.alarm;
          if (alarmIds.has(x.id)) {
            add([...path, 'id'], 'DUPLICATE_ID', `${what} ${branch}: '${x.id}' is an alarm of the alarms section; a rule alarm needs an id of its own`);
            ok = false;
            return [];
          }
          const owner = alarmOwner.get(x.id);
          if (owner !== undefined && owner !== r.id) {
            add([...path, 'id'], 'DUPLICATE_ID', `${what} ${branch}: the rule alarm '${x.id}' belongs to rule '${owner}'`);
            ok = false;
            return [];
          }
          alarmOwner.set(x.id, r.id);
          const d = alarmDefs.get(x.id) ?? {};
          for (const k of ['severity', 'message'] as const) {
            if (x[k] === undefined) continue;
            if (d[k] !== undefined && d[k] !== x[k]) {
              add([...path, k], 'ALARM_CONFLICT', `${what} ${branch}: the rule alarm '${x.id}' is given two ${k}s ('${d[k]}', '${x[k]}'); give it once`);
              ok = false;
            }
          }
          alarmDefs.set(x.id, { severity: d.severity ?? x.severity, message: d.message ?? x.message });
          return [{ kind: 'alarm', alarm: x.id, raise: !x.clear }];
        }
        if ('notify' in a) {
          const path = at(branch, ai, 'notify', 'message');
          let refsOk = true;
          for (const m of a.notify.message.matchAll(MESSAGE_REF)) {
            if (checkRef(m[1]!, path, `${what} ${branch} notify`)) inputs.add(m[1]!);
            else refsOk = false;
          }
          if (!refsOk) {
            ok = false;
            return [];
          }
          return [{ kind: 'notify', message: a.notify.message, severity: a.notify.severity }];
        }
        const kind = 'control' in a ? 'control' : 'set';
        const tg = 'control' in a ? a.control : a.set;
        const path = at(branch, ai, kind);
        const m = byId.get(tg.model);
        if (!m) {
          const ids = [...byId.keys()];
          add(
            [...path, 'model'],
            'UNKNOWN_REF',
            `${what} ${branch}: there is no model '${tg.model}'${ids.length ? `; did you mean '${closest(tg.model, ids)}'?` : ''}`,
          );
          ok = false;
          return [];
        }
        if (kind === 'control' && !m.controls.has(tg.name)) {
          const names = [...m.controls.keys()];
          add(
            [...path, 'name'],
            'UNKNOWN_REF',
            `${what} ${branch}: model '${tg.model}' has no control '${tg.name}'${names.length ? `; did you mean '${closest(tg.name, names)}'?` : ' (it has no controls)'}`,
          );
          ok = false;
          return [];
        }
        if (kind === 'set' && (!m.measurements.has(tg.name) || m.mapping.has(tg.name))) {
          add([...path, 'name'], 'UNKNOWN_REF', `${what} ${branch}: '${tg.model}.${tg.name}' must be a measurement of its model that no channel point feeds`);
          ok = false;
          return [];
        }
        const value = compile(tg.value, [...path, 'value'], `${what} ${branch} value`, inputs, windows);
        if (!value) {
          ok = false;
          return [];
        }
        return [{ kind, model: tg.model, name: tg.name, value, minIntervalMs: 'control' in a ? a.control.minIntervalMs : 0 }];
      });
    const thenActions = actions(r.then, 'then');
    const elseActions = actions(r.else, 'else');
    if (!ok || !when) return;
    out.push({
      id: r.id,
      enabled: r.enabled,
      priority: r.priority,
      onChange,
      everyMs: t.every ?? null,
      event,
      when,
      forMs: r.for,
      cooldownMs: r.cooldownMs,
      then: thenActions,
      else: elseActions,
      inputs: [...inputs],
      models: [...new Set([...inputs, ...onChange].map((ref) => ref.split('.')[0]!))],
      windows: uniqueWindows(windows),
      alarms: [...alarmDefs].map(([id, d]) => ({ id, rule: r.id, severity: d.severity ?? 'minor', message: d.message ?? id })),
    });
  });
  checkCycles(out, rules, add);
  return out;
}

/**
 * A cycle of rules that set each other's inputs (A sets a value B reads, B one
 * that A reads…) would make them drive each other without end: an error at the
 * first `set` action of the cycle. Control actions are not followed: what a
 * device reads back is not known here.
 */
function checkCycles(defs: readonly RuleDef[], rules: readonly RuleConfig[], add: AddIssue): void {
  const readers = new Map<string, string[]>();
  for (const d of defs) for (const ref of d.inputs) readers.set(ref, [...(readers.get(ref) ?? []), d.id]);
  const sets = (d: RuleDef) => [...d.then, ...d.else].flatMap((a) => (a.kind === 'set' ? [`${a.model}.${a.name}`] : []));
  const next = new Map(defs.map((d) => [d.id, [...new Set(sets(d).flatMap((ref) => readers.get(ref) ?? []))].filter((x) => x !== d.id)]));
  const state = new Map<string, 'open' | 'done'>();
  const reported = new Set<string>();
  const visit = (id: string, path: string[]): void => {
    if (state.get(id) === 'done') return;
    if (state.get(id) === 'open') {
      const cycle = path.slice(path.indexOf(id));
      const key = [...cycle].sort().join(',');
      if (reported.has(key)) return;
      reported.add(key);
      const ri = rules.findIndex((r) => r.id === cycle[0]);
      const branch = rules[ri]!.then.some((a) => 'set' in a) ? 'then' : 'else';
      const ai = rules[ri]![branch].findIndex((a) => 'set' in a);
      add(
        ['rules', ri, branch, ai, 'set'],
        'RULE_CYCLE',
        `rules ${[...cycle, id].map((x) => `'${x}'`).join(' → ')} set each other's inputs: they would drive each other without end`,
      );
      return;
    }
    state.set(id, 'open');
    for (const n of next.get(id) ?? []) visit(n, [...path, id]);
    state.set(id, 'done');
  };
  for (const d of defs) visit(d.id, []);
}

function uniqueWindows(ws: readonly WindowRef[]): WindowRef[] {
  const m = new Map<string, WindowRef>();
  for (const w of ws) m.set(`${w.fn}|${w.ref}|${w.ms}`, w);
  return [...m.values()];
}
