/**
 * Loads a config folder: read (source.ts), check against the schema, check
 * what a schema cannot (references, duplicates, calculation cycles), then
 * resolve into a SiteConfig. Every problem is collected, with its position,
 * before anything is thrown: the user sees all mistakes at once.
 */
import { closest } from 'fastest-levenshtein';
import { z } from 'zod';
import { channelSchemas, checkChannel, protocolNames } from '../../actors/channel/protocols.js';
import { ConfigError, VoltageError, type ConfigIssue, type SourcePosition } from '../errors.js';
import { compileExpr, ExprError, type CompiledExpr } from '../expr.js';
import '../protocols.js';
import { conditionSpec, instantiateTemplateAlarms, type AlarmConfig } from './alarms.js';
import { resolveRules } from './rules.js';
import { DEFAULT_KEEP, type HistoryKeep } from './history.js';
import { configSchemaWith, POINT_REF_PATTERN, type LoadedConfig, type PointType } from './schema.js';
import type { AlarmDef, Calculation, ModelDef, PointRef, SiteConfig } from './site.js';
import { pointKey } from './site.js';
import { PointMapping } from './pointMapping.js';
import { flatString, ValueSharer } from './share.js';
import { formatPos, readConfigFolder, type ConfigSource } from './source.js';

type Path = readonly (string | number)[];

export function loadConfig(dir: string): SiteConfig {
  const src = readConfigFolder(dir);
  const issues = [...src.issues];
  const parsed = registered().schema.safeParse(src.raw);
  if (!parsed.success) {
    for (const zi of parsed.error.issues) issues.push(...schemaIssue(src, zi));
  }
  if (issues.length > 0 || !parsed.success) throw new ConfigError(sortIssues(issues));
  const site = resolveSite(src, parsed.data, issues);
  if (issues.length > 0) throw new ConfigError(sortIssues(issues));
  return site;
}

function sortIssues(issues: ConfigIssue[]): ConfigIssue[] {
  return [...issues].sort((a, b) => a.file.localeCompare(b.file) || a.line - b.line || a.column - b.column);
}

function pathText(path: Path): string {
  return path.reduce<string>((s, seg) => (typeof seg === 'number' ? `${s}[${seg}]` : s ? `${s}.${seg}` : seg), '');
}

function valueAt(root: unknown, path: Path): unknown {
  let cur = root;
  for (const seg of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string | number, unknown>)[seg];
  }
  return cur;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return `the text ${JSON.stringify(v)}`;
  return `${typeof v} ${String(v)}`;
}

type JsonNode = {
  properties?: Record<string, JsonNode>;
  items?: JsonNode;
  additionalProperties?: JsonNode | boolean;
  anyOf?: JsonNode[];
  oneOf?: JsonNode[];
  const?: unknown;
};

/** The config schema with every registered protocol, and its JSON Schema (made when first asked for), rebuilt when a protocol is added. */
let cache: { readonly names: string; readonly schema: ReturnType<typeof configSchemaWith>; json?: JsonNode } | undefined;
function registered(): NonNullable<typeof cache> {
  const names = protocolNames().join(',');
  if (cache?.names !== names) {
    const [first, ...rest] = channelSchemas();
    if (!first) throw new VoltageError('config', 'NO_PROTOCOL', 'no channel protocol is registered (runtime/protocols.ts registers the built-in ones)');
    cache = { names, schema: configSchemaWith([first, ...rest]) };
  }
  return cache;
}

/** The keys allowed at `path`, read off the JSON Schema (choosing the union variant that the data's `kind` names). */
function allowedKeys(raw: unknown, path: Path): string[] {
  const schemas = registered();
  let node: JsonNode | undefined = (schemas.json ??= z.toJSONSchema(schemas.schema, { io: 'input', unrepresentable: 'any' }) as JsonNode);
  const pick = (n: JsonNode, at: Path): JsonNode => {
    const variants = n.anyOf ?? n.oneOf;
    if (!variants) return n;
    const data = valueAt(raw, at) as Record<string, unknown> | undefined;
    // A discriminated union: the variant whose constant property (kind, protocol) matches the data.
    const byKind = variants.find((v) =>
      Object.entries(v.properties ?? {}).some(([k, p]) => p.const !== undefined && data !== undefined && p.const === data[k]),
    );
    return pick(byKind ?? variants.find((v) => v.properties) ?? n, at);
  };
  for (let i = 0; i < path.length && node; i++) {
    node = pick(node, path.slice(0, i));
    const seg = path[i]!;
    if (typeof seg === 'number') node = node.items;
    else node = node.properties?.[seg] ?? (typeof node.additionalProperties === 'object' ? node.additionalProperties : undefined);
  }
  if (!node) return [];
  node = pick(node, path);
  return Object.keys(node.properties ?? {});
}

function schemaIssue(src: ConfigSource, zi: z.core.$ZodIssue): ConfigIssue[] {
  const path = zi.path.filter((p): p is string | number => typeof p !== 'symbol');
  const where = pathText(path) || 'the config';
  const at = (p: Path, key = false): SourcePosition => src.locate(p, { key });
  const value = valueAt(src.raw, path);
  if (value === undefined && (zi.code === 'invalid_type' || zi.code === 'invalid_value' || zi.code === 'invalid_union')) {
    return [{ ...at(path.slice(0, -1)), code: 'MISSING_KEY', message: `${where} is required` }];
  }
  switch (zi.code) {
    case 'unrecognized_keys':
      return zi.keys.map((k) => {
        const valid = allowedKeys(src.raw, path);
        const near = valid.length > 0 ? closest(k, valid) : undefined;
        const hint = near ? `; did you mean '${near}'?` : '';
        return { ...at([...path, k], true), code: 'UNKNOWN_KEY', message: `unknown key '${k}' in ${where}${hint} (allowed: ${valid.join(', ')})` };
      });
    case 'invalid_type':
      return [
        {
          ...at(path),
          code: 'WRONG_TYPE',
          message: `${where} must be ${zi.expected === 'object' ? 'a mapping' : zi.expected === 'array' ? 'a list' : `a ${zi.expected}`}, not ${describe(value)}`,
        },
      ];
    case 'invalid_value':
      return [
        {
          ...at(path),
          code: 'INVALID_VALUE',
          message: `${where} must be one of ${zi.values.map((v) => JSON.stringify(v)).join(', ')}, not ${describe(value)}`,
        },
      ];
    case 'invalid_union': {
      const options = (zi as { options?: unknown[] }).options;
      if (options) {
        return [
          {
            ...at(path),
            code: 'INVALID_VALUE',
            message: `${where} must be one of ${options.map((o) => JSON.stringify(o)).join(', ')}, not ${describe(value)}`,
          },
        ];
      }
      return [{ ...at(path), code: 'WRONG_TYPE', message: `${where}: ${zi.message}` }];
    }
    case 'too_small':
    case 'too_big':
      return [
        {
          ...at(path),
          code: 'OUT_OF_RANGE',
          message: `${where} is ${describe(value)}: ${zi.message.replace(/^Too (small|big): expected \w+ to (be|have) /, 'must be ')}`,
        },
      ];
    default:
      return [{ ...at(path), code: 'INVALID_VALUE', message: `${where}: ${zi.message}` }];
  }
}

/** Checks what the schema cannot and resolves templates, mappings and calculation order. */
function resolveSite(src: ConfigSource, cfg: LoadedConfig, issues: ConfigIssue[]): SiteConfig {
  const add = (path: Path, code: string, message: string, key = false) => issues.push({ ...src.locate(path, { key }), code, message });

  // Channels and their points.
  const channelPoints = new Map<string, Map<string, number>>();
  const pointsByName = new Map<string, Map<string, PointRef>>();
  const channelIndex = new Map<string, number>();
  cfg.channels.forEach((ch, ci) => {
    const first = channelIndex.get(ch.id);
    if (first !== undefined) {
      add(['channels', ci, 'id'], 'DUPLICATE_ID', `channel id '${ch.id}' is used twice (first at ${formatPos(src.locate(['channels', first, 'id']))})`);
      return;
    }
    channelIndex.set(ch.id, ci);
    const points = new Map<string, number>();
    channelPoints.set(ch.id, points);
    const named = new Map<string, PointRef>();
    pointsByName.set(ch.id, named);
    ch.points.forEach((p, pi) => {
      const k = `${p.type}:${p.id}`;
      const firstP = points.get(k);
      if (firstP !== undefined)
        add(
          ['channels', ci, 'points', pi, 'id'],
          'DUPLICATE_ID',
          `point ${k} of channel '${ch.id}' is defined twice (first at ${formatPos(src.locate(['channels', ci, 'points', firstP, 'id']))})`,
        );
      else points.set(k, pi);
      if (p.name !== undefined && !named.has(p.name)) named.set(p.name, { channel: ch.id, type: p.type, point: p.id });
      if (p.min !== undefined && p.max !== undefined && p.min > p.max)
        add(['channels', ci, 'points', pi, 'min'], 'OUT_OF_RANGE', `point ${k}: min ${p.min} is above max ${p.max}`);
    });
    // What only the channel's protocol knows to check (a Modbus address range, a virtual point's waveform).
    for (const pr of checkChannel(ch)) add(['channels', ci, ...pr.at], pr.code, pr.message);
  });

  // Models: templates, names, mappings.
  const modelIndex = new Map<string, number>();
  cfg.models.forEach((m, mi) => {
    const first = modelIndex.get(m.id);
    if (first !== undefined)
      add(['models', mi, 'id'], 'DUPLICATE_ID', `model id '${m.id}' is used twice (first at ${formatPos(src.locate(['models', first, 'id']))})`);
    else modelIndex.set(m.id, mi);
  });
  const templateNames = Object.keys(cfg.templates);
  // The per-point tables live as long as the runtime: equal values are kept once (share.ts).
  const sharer = new ValueSharer();
  const mappedBy = new Map<string, Path>();
  const shapes = cfg.models.map((m, mi) => {
    const tpl = m.template ? cfg.templates[m.template] : undefined;
    if (m.template && !tpl) {
      const near = templateNames.length ? closest(m.template, templateNames) : undefined;
      add(
        ['models', mi, 'template'],
        'UNKNOWN_REF',
        `model '${m.id}' uses template '${m.template}', which is not defined${near ? `; did you mean '${near}'?` : ''}`,
      );
    }
    const measurements = new Map(Object.entries({ ...tpl?.measurements, ...m.measurements }).map(([k, v]) => [k, sharer.share({ unit: v.unit })]));
    const calcSpecs = { ...tpl?.calculations, ...m.calculations };
    for (const name of Object.keys(calcSpecs)) {
      if (measurements.has(name))
        add(['models', mi, 'calculations', name], 'DUPLICATE_ID', `model '${m.id}': '${name}' is both a measurement and a calculation`, true);
    }
    const controlNames = new Set(Object.keys({ ...tpl?.controls, ...m.controls }));
    for (const name of controlNames) {
      if (measurements.has(name) || name in calcSpecs)
        add(['models', mi, 'controls', name], 'DUPLICATE_ID', `model '${m.id}': '${name}' is both a control and a measurement or calculation`, true);
      if (m.mapping[name] === undefined && !(m.template && !tpl))
        add(['models', mi], 'UNKNOWN_REF', `model '${m.id}': control '${name}' is not mapped to a control or adjustment point (add it to 'mapping')`);
    }
    const mapping = new PointMapping();
    const controls = new Map<string, PointRef & { min: number | undefined; max: number | undefined }>();
    for (const [name, refText] of Object.entries(m.mapping)) {
      const path = ['models', mi, 'mapping', name];
      const isControl = controlNames.has(name);
      if (!measurements.has(name) && !isControl) {
        if (m.template && !tpl) continue; // already reported: the template is missing
        const names = [...measurements.keys(), ...controlNames];
        add(
          path,
          'UNKNOWN_REF',
          `model '${m.id}' maps '${name}', which is not one of its measurements or controls${names.length ? `; did you mean '${closest(name, names)}'?` : ''}`,
          true,
        );
        continue;
      }
      const match = POINT_REF_PATTERN.exec(refText)!;
      const ref: PointRef = { channel: match[1]!, type: match[2] as PointType, point: Number(match[3]) };
      const points = channelPoints.get(ref.channel);
      if (!points) {
        const ids = [...channelPoints.keys()];
        add(
          path,
          'UNKNOWN_REF',
          `model '${m.id}' maps '${name}' to channel '${ref.channel}', which does not exist${ids.length ? `; did you mean '${closest(ref.channel, ids)}'?` : ''}`,
        );
        continue;
      }
      const pointIndex = points.get(`${ref.type}:${ref.point}`);
      if (pointIndex === undefined) {
        add(path, 'UNKNOWN_REF', `model '${m.id}' maps '${name}' to point ${ref.type}:${ref.point}, which channel '${ref.channel}' does not have`);
        continue;
      }
      if (isControl) {
        if (ref.type !== 'c' && ref.type !== 'a') {
          add(path, 'INVALID_VALUE', `model '${m.id}': control '${name}' must map to a control (c) or adjustment (a) point, not ${ref.type}:${ref.point}`);
          continue;
        }
        const pc = cfg.channels[channelIndex.get(ref.channel)!]!.points[pointIndex]!;
        controls.set(name, { ...ref, min: pc.min, max: pc.max });
        continue;
      }
      const other = mappedBy.get(pointKey(ref));
      if (other) {
        add(path, 'DUPLICATE_ID', `channel point ${pointKey(ref)} is already mapped at ${formatPos(src.locate(other))}; a channel point feeds one model value`);
        continue;
      }
      mappedBy.set(pointKey(ref), path);
      mapping.set(name, ref);
    }
    if (m.channel !== undefined) {
      const named = pointsByName.get(m.channel);
      if (!named) {
        const ids = [...pointsByName.keys()];
        add(
          ['models', mi, 'channel'],
          'UNKNOWN_REF',
          `model '${m.id}' takes its points from channel '${m.channel}', which does not exist${ids.length ? `; did you mean '${closest(m.channel, ids)}'?` : ''}`,
        );
      } else {
        for (const name of measurements.keys()) {
          if (mapping.has(name) || m.mapping[name] !== undefined) continue;
          const ref = named.get(name);
          if (!ref) {
            add(
              ['models', mi, 'channel'],
              'UNKNOWN_REF',
              `model '${m.id}': channel '${m.channel}' has no point named '${name}' (give it in 'mapping' or name a point so)`,
            );
            continue;
          }
          const other = mappedBy.get(pointKey(ref));
          if (other) {
            add(
              ['models', mi, 'channel'],
              'DUPLICATE_ID',
              `channel point ${pointKey(ref)} ('${name}') is already mapped at ${formatPos(src.locate(other))}; a channel point feeds one model value`,
            );
            continue;
          }
          mappedBy.set(pointKey(ref), ['models', mi, 'channel']);
          mapping.set(name, ref);
        }
      }
    }
    return { m, mi, measurements, calcSpecs, mapping, controls, incomplete: Boolean(m.template && !tpl) };
  });

  // Calculations: compile, check references, order, reject cycles.
  const byId = new Map(shapes.map((s) => [s.m.id, s]));
  const compiled = new Map<string, { expr: CompiledExpr; path: Path; deps: string[] }>();
  for (const s of shapes) {
    for (const [name, spec] of Object.entries(s.calcSpecs)) {
      const path: Path = s.m.calculations[name]
        ? ['models', s.mi, 'calculations', name, 'expr']
        : ['templates', s.m.template ?? '', 'calculations', name, 'expr'];
      let expr: CompiledExpr;
      try {
        expr = compileExpr(spec.expr);
      } catch (e) {
        const idx = e instanceof ExprError ? e.index : 0;
        add(path, 'EXPR_SYNTAX', `calculation '${s.m.id}.${name}': ${(e as Error).message} (at character ${idx + 1} of "${spec.expr}")`);
        continue;
      }
      const deps: string[] = [];
      for (const ref of expr.refs) {
        const [modelId, valueName] = ref.includes('.') ? (ref.split('.') as [string, string]) : [s.m.id, ref];
        const target = byId.get(modelId);
        const known = target ? [...target.measurements.keys(), ...Object.keys(target.calcSpecs)] : [];
        if (!target) add(path, 'UNKNOWN_REF', `calculation '${s.m.id}.${name}' reads '${ref}', but there is no model '${modelId}'`);
        else if (!known.includes(valueName)) {
          if (!target.incomplete)
            add(
              path,
              'UNKNOWN_REF',
              `calculation '${s.m.id}.${name}' reads '${ref}', which model '${modelId}' does not have${known.length ? `; did you mean '${closest(valueName, known)}'?` : ''}`,
            );
        } else deps.push(`${modelId}.${valueName}`);
      }
      compiled.set(`${s.m.id}.${name}`, { expr, path, deps });
    }
  }
  const order = topoOrder(compiled, (cycle) => {
    const at = compiled.get(cycle[0]!)!.path;
    add(at, 'CALC_CYCLE', `calculations form a cycle: ${[...cycle, cycle[0]].join(' → ')}`);
  });

  const models: ModelDef[] = shapes.map((s) => {
    const calculations: Calculation[] = order
      .filter((k) => k.startsWith(`${s.m.id}.`) && compiled.has(k))
      .map((k) => {
        const name = k.slice(s.m.id.length + 1);
        return { name, expr: compiled.get(k)!.expr, unit: s.calcSpecs[name]?.unit };
      });
    const dependsOn = new Set<string>();
    for (const c of calculations)
      for (const d of compiled.get(`${s.m.id}.${c.name}`)!.deps) {
        const dm = d.split('.')[0]!;
        if (dm !== s.m.id) dependsOn.add(dm);
      }
    const tpl = s.m.template ? cfg.templates[s.m.template] : undefined;
    // What history keeps of each value: the value's own spec (the model's, else the template's), the model's, the template's, on-change.
    const keep = new Map<string, HistoryKeep>();
    const modelKeep = s.m.history ?? tpl?.history ?? DEFAULT_KEEP;
    for (const name of s.measurements.keys()) keep.set(name, (s.m.measurements[name] ?? tpl?.measurements[name])?.history ?? modelKeep);
    for (const c of calculations) keep.set(c.name, s.calcSpecs[c.name]?.history ?? modelKeep);
    return {
      id: s.m.id,
      name: s.m.name ?? s.m.id,
      nature: s.m.nature ?? tpl?.nature ?? 'generic',
      measurements: sharer.shareMap(s.measurements),
      calculations,
      mapping: s.mapping,
      controls: s.controls,
      dependsOn: [...dependsOn],
      keep: sharer.shareMap(keep),
    };
  });
  // Points come out of the schema compacted (schema.ts), one object shape per protocol; channels that
  // read one point table share its point objects.
  const channels = cfg.channels.map((ch) => ({ ...ch, points: ch.points.map((p) => sharer.share(p)) }));
  const alarms = resolveAlarms(cfg, models, add, sharer);
  const rules = resolveRules(cfg.rules, models, add, new Set(alarms.map((a) => a.id)));
  checkCloud(cfg, models, channelPoints, add);
  return Object.freeze({
    dir: src.dir,
    runtime: cfg.runtime,
    channels,
    models,
    rules,
    ruleTests: cfg.ruleTests,
    gateway: cfg.gateway,
    history: cfg.history,
    alarms,
    alarmPolicy: cfg.alarmPolicy,
    cloud: cfg.cloud,
  });
}

/** Ids that would collide with the alarm keys of the same prefix (runtime/redis/keys.ts). */
const RESERVED_ALARM_IDS = new Set(['active', 'events', 'update', 'filters', 'stats', 'index']);

/**
 * The alarms section and every template's alarms, once per instance: each alarm's
 * model must exist, its point must be one of the model's values, and its
 * expressions must compile and read values that exist.
 */
function resolveAlarms(
  cfg: LoadedConfig,
  models: readonly ModelDef[],
  add: (path: Path, code: string, message: string, key?: boolean) => void,
  sharer: ValueSharer,
): AlarmDef[] {
  const byId = new Map(models.map((m) => [m.id, m]));
  const valuesOf = (m: ModelDef) => [...m.measurements.keys(), ...m.calculations.map((c) => c.name)];
  const entries: Array<{ readonly a: AlarmConfig; readonly path: Path }> = [];
  cfg.alarms.forEach((a, i) => {
    entries.push({ a, path: ['alarms', i] });
  });
  cfg.models.forEach((m) => {
    const tpl = m.template ? cfg.templates[m.template] : undefined;
    if (!tpl) return;
    instantiateTemplateAlarms(m.id, tpl.alarms).forEach((a, i) => {
      entries.push({ a, path: ['templates', m.template!, 'alarms', i] });
    });
  });
  const seen = new Map<string, Path>();
  const out: AlarmDef[] = [];
  /** Compiles an expression of alarm `a` and checks its references; undefined after reporting a problem. */
  const compile = (a: AlarmConfig, text: string, path: Path, what: string): CompiledExpr | undefined => {
    let expr: CompiledExpr;
    try {
      expr = compileExpr(text);
    } catch (e) {
      const idx = e instanceof ExprError ? e.index : 0;
      add(path, 'EXPR_SYNTAX', `alarm '${a.id}' ${what}: ${(e as Error).message} (at character ${idx + 1} of "${text}")`);
      return undefined;
    }
    let ok = true;
    for (const ref of expr.refs) {
      const [modelId, valueName] = ref.includes('.') ? (ref.split('.') as [string, string]) : [a.model, ref];
      const target = byId.get(modelId);
      const known = target ? valuesOf(target) : [];
      if (!target) add(path, 'UNKNOWN_REF', `alarm '${a.id}' ${what} reads '${ref}', but there is no model '${modelId}'`);
      else if (!known.includes(valueName))
        add(
          path,
          'UNKNOWN_REF',
          `alarm '${a.id}' ${what} reads '${ref}', which model '${modelId}' does not have${known.length ? `; did you mean '${closest(valueName, known)}'?` : ''}`,
        );
      else continue;
      ok = false;
    }
    return ok ? expr : undefined;
  };
  for (const { a, path } of entries) {
    const first = seen.get(a.id);
    if (first) {
      add([...path, 'id'], 'DUPLICATE_ID', `alarm id '${a.id}' is used twice`);
      continue;
    }
    seen.set(a.id, path);
    if (RESERVED_ALARM_IDS.has(a.id)) {
      add([...path, 'id'], 'INVALID_VALUE', `alarm id '${a.id}' is reserved (${[...RESERVED_ALARM_IDS].join(', ')})`);
      continue;
    }
    const model = byId.get(a.model);
    if (!model) {
      const ids = [...byId.keys()];
      add(
        [...path, 'model'],
        'UNKNOWN_REF',
        `alarm '${a.id}' is on model '${a.model}', which does not exist${ids.length ? `; did you mean '${closest(a.model, ids)}'?` : ''}`,
      );
      continue;
    }
    const spec = conditionSpec(a.when);
    let test: AlarmDef['test'] | undefined;
    if (spec.kind === 'expr') {
      const expr = compile(a, spec.expr, [...path, 'when', 'expr'], 'expr');
      if (expr) test = { kind: 'expr', expr };
    } else {
      const point = a.when.point ?? '';
      const known = valuesOf(model);
      if (!known.includes(point))
        add(
          [...path, 'when', 'point'],
          'UNKNOWN_REF',
          `alarm '${a.id}' reads '${point}', which model '${a.model}' does not have${known.length ? `; did you mean '${closest(point, known)}'?` : ''}`,
        );
      // A template's test is the same for every instance: one object for all of them.
      else test = sharer.share({ kind: 'point', point, spec });
    }
    const suppressWhen = a.suppressWhen !== undefined ? compile(a, a.suppressWhen, [...path, 'suppressWhen'], 'suppressWhen') : null;
    if (!test || suppressWhen === undefined || !a.enabled) continue;
    // A template's alarm id and message are made per instance: kept as one flat string each.
    const id = flatString(a.id);
    out.push({
      id,
      model: a.model,
      test,
      onDelayMs: a.when.onDelayMs,
      offDelayMs: a.when.offDelayMs,
      severity: a.severity,
      message: a.message ?? flatString(`${id}: {value}`),
      latch: a.latch,
      reAlarmMs: a.reAlarmMs ?? null,
      escalateAfterMs: a.escalateAfterMs ?? null,
      suppressWhen,
      chattering: sharer.share(a.chattering ?? cfg.alarmPolicy.chattering),
      limit: spec.kind === 'above' || spec.kind === 'below' ? spec.limit : null,
      source: sharer.share({ ...a, id }) as unknown as Record<string, unknown>,
    });
  }
  return out;
}

/** Cloud links: ids unique; the models, channels and points they name (models, channels, deadband) exist. */
function checkCloud(
  cfg: LoadedConfig,
  models: readonly ModelDef[],
  channelPoints: ReadonlyMap<string, ReadonlyMap<string, number>>,
  add: (path: Path, code: string, message: string, key?: boolean) => void,
): void {
  const seen = new Set<string>();
  const names = new Map(models.map((m) => [m.id, [...m.measurements.keys(), ...m.calculations.map((c) => c.name)]]));
  const mean = (x: string, known: readonly string[]) => (known.length ? `; did you mean '${closest(x, known)}'?` : '');
  cfg.cloud?.links.forEach((l, li) => {
    const at = (...p: Path) => ['cloud', 'links', li, ...p] as Path;
    if (seen.has(l.id)) add(at('id'), 'DUPLICATE_ID', `cloud link '${l.id}' is defined twice`);
    seen.add(l.id);
    l.models?.forEach((m, mi) => {
      if (!names.has(m)) add(at('models', mi), 'UNKNOWN_REF', `cloud link '${l.id}' uplinks model '${m}', which does not exist${mean(m, [...names.keys()])}`);
    });
    l.channels?.forEach((c, ci) => {
      if (!channelPoints.has(c))
        add(at('channels', ci), 'UNKNOWN_REF', `cloud link '${l.id}' uplinks channel '${c}', which does not exist${mean(c, [...channelPoints.keys()])}`);
    });
    const db = l.deadband;
    if (!db) return;
    for (const [model, byName] of Object.entries(db.models)) {
      const known = names.get(model);
      if (!known) {
        add(at('deadband', 'models', model), 'UNKNOWN_REF', `deadband of model '${model}', which does not exist${mean(model, [...names.keys()])}`, true);
        continue;
      }
      if (l.models && !l.models.includes(model))
        add(at('deadband', 'models', model), 'UNKNOWN_REF', `deadband of model '${model}', which cloud link '${l.id}' does not uplink (models)`, true);
      for (const name of Object.keys(byName))
        if (!known.includes(name))
          add(at('deadband', 'models', model, name), 'UNKNOWN_REF', `model '${model}' has no value '${name}'${mean(name, known)}`, true);
    }
    for (const [channel, byPoint] of Object.entries(db.channels)) {
      const points = channelPoints.get(channel);
      if (!points) {
        add(
          at('deadband', 'channels', channel),
          'UNKNOWN_REF',
          `deadband of channel '${channel}', which does not exist${mean(channel, [...channelPoints.keys()])}`,
          true,
        );
        continue;
      }
      if (!l.channels?.includes(channel))
        add(
          at('deadband', 'channels', channel),
          'UNKNOWN_REF',
          `deadband of channel '${channel}', which cloud link '${l.id}' does not uplink (channels)`,
          true,
        );
      for (const point of Object.keys(byPoint))
        if (!points.has(point))
          add(
            at('deadband', 'channels', channel, point),
            'UNKNOWN_REF',
            `channel '${channel}' has no point '${point}' (points are named type:id, e.g. m:1)${mean(point, [...points.keys()])}`,
            true,
          );
    }
  });
}

/** Depth-first topological order; reports each cycle once. */
function topoOrder(graph: ReadonlyMap<string, { deps: string[] }>, onCycle: (cycle: string[]) => void): string[] {
  const state = new Map<string, 'visiting' | 'done'>();
  const order: string[] = [];
  const stack: string[] = [];
  const visit = (n: string) => {
    const s = state.get(n);
    if (s === 'done') return;
    if (s === 'visiting') {
      onCycle(stack.slice(stack.indexOf(n)));
      return;
    }
    state.set(n, 'visiting');
    stack.push(n);
    for (const d of graph.get(n)?.deps ?? []) if (graph.has(d)) visit(d);
    stack.pop();
    state.set(n, 'done');
    order.push(n);
  };
  for (const n of [...graph.keys()].sort()) visit(n);
  return order;
}
