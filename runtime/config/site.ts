/**
 * The typed, immutable site that the runtime runs: what is left of a config
 * folder once it has been read, checked and resolved. Nothing deeper than
 * runtime/config reads YAML or re-validates.
 */
import type { ConditionSpec } from '../../machines/alarmCondition.js';
import type { Severity } from '../../machines/alarmMachine.js';
import type { CompiledExpr } from '../expr.js';
import type { AlarmPolicy } from './alarms.js';
import type { CloudConfig } from './cloud.js';
import type { RuleDef } from './rules.js';
import type { RuleTestConfig } from './ruleTests.js';
import type { ChannelConfig, GatewayConfig, PointConfig, PointType, RuntimeConfig, SimSpec } from './schema.js';
import type { HistoryConfig, HistoryKeep } from './history.js';

export type { RuleAction, RuleDef } from './rules.js';
export type { AlarmPolicy, ChannelConfig, GatewayConfig, HistoryConfig, HistoryKeep, PointConfig, PointType, RuntimeConfig, SimSpec };

export interface PointRef {
  readonly channel: string;
  readonly type: PointType;
  readonly point: number;
}

export interface Calculation {
  readonly name: string;
  readonly expr: CompiledExpr;
  readonly unit: string | undefined;
}

export interface ModelDef {
  readonly id: string;
  readonly name: string;
  readonly nature: string;
  readonly measurements: ReadonlyMap<string, { readonly unit: string | undefined }>;
  /** In dependency order: a calculation comes after every calculation of this model it reads. */
  readonly calculations: readonly Calculation[];
  /** measurement name → the channel point that feeds it */
  readonly mapping: ReadonlyMap<string, PointRef>;
  /** control name → the control/adjustment point it writes, with that point's limits */
  readonly controls: ReadonlyMap<string, PointRef & { readonly min: number | undefined; readonly max: number | undefined }>;
  /** Other models whose values this model's calculations read. */
  readonly dependsOn: readonly string[];
  /** What history keeps of each value (measurements and calculations), resolved: value, model, template, on-change. */
  readonly keep: ReadonlyMap<string, HistoryKeep>;
}

/** What an alarm's condition tests: a point of its model (threshold, equality, quality, staleness) or an expression. */
export type AlarmTest =
  | { readonly kind: 'point'; readonly point: string; readonly spec: ConditionSpec }
  | { readonly kind: 'expr'; readonly expr: CompiledExpr };

/** One alarm definition, resolved: a template's alarms appear once per instance. */
export interface AlarmDef {
  readonly id: string;
  readonly model: string;
  readonly test: AlarmTest;
  readonly onDelayMs: number;
  readonly offDelayMs: number;
  readonly severity: Severity;
  readonly message: string;
  readonly latch: boolean;
  readonly reAlarmMs: number | null;
  readonly escalateAfterMs: number | null;
  /** Suppression by design: while true, the alarm is suppressed. */
  readonly suppressWhen: CompiledExpr | null;
  readonly chattering: { readonly count: number; readonly windowMs: number };
  /** The limit of a threshold, for the message's {limit}. */
  readonly limit: number | null;
  /** The definition as written (for the API). */
  readonly source: Readonly<Record<string, unknown>>;
}

export interface SiteConfig {
  readonly dir: string;
  readonly runtime: RuntimeConfig;
  readonly channels: readonly ChannelConfig[];
  readonly models: readonly ModelDef[];
  readonly rules: readonly RuleDef[];
  /** Test cases of the rules (`voltage rules test`); the runtime ignores them. */
  readonly ruleTests: readonly RuleTestConfig[];
  /** Absent: no HTTP server. */
  readonly gateway: GatewayConfig | undefined;
  /** Absent: nothing is kept beyond Redis. */
  readonly history: HistoryConfig | undefined;
  readonly alarms: readonly AlarmDef[];
  readonly alarmPolicy: AlarmPolicy;
  /** Absent: no cloud links. */
  readonly cloud?: CloudConfig | undefined;
}

export function pointKey(ref: PointRef): string {
  return `${ref.channel}:${ref.type}:${ref.point}`;
}

/**
 * The heap growth a site runs with: its own, else 100 for a site with rules, whose reaction time a full GC's marking
 * delays (at 100k points/s with 1,000 rules, p99 median 14 -> 12.5 ms and ~4 % less CPU for ~28 MB more RSS;
 * docs/benchmarks.md, round 21), and V8's own otherwise (the feed's tree stays within its RSS budget).
 */
export function heapGrowingPercent(site: Pick<SiteConfig, 'runtime' | 'rules'>): number {
  return site.runtime.heapGrowingPercent ?? (site.rules.length > 0 ? 100 : 0);
}
