/**
 * The typed, immutable site that the runtime runs: what is left of a config
 * folder once it has been read, checked and resolved. Nothing deeper than
 * runtime/config reads YAML or re-validates.
 */
import type { CompiledExpr } from '../expr.js';
import type { RuleDef } from './rules.js';
import type { ChannelConfig, GatewayConfig, PointConfig, PointType, RuntimeConfig, SimSpec } from './schema.js';

export type { RuleAction, RuleDef } from './rules.js';
export type { ChannelConfig, GatewayConfig, PointConfig, PointType, RuntimeConfig, SimSpec };

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
}

export interface SiteConfig {
  readonly dir: string;
  readonly runtime: RuntimeConfig;
  readonly channels: readonly ChannelConfig[];
  readonly models: readonly ModelDef[];
  readonly rules: readonly RuleDef[];
  /** Absent: no HTTP server. */
  readonly gateway: GatewayConfig | undefined;
}

export function pointKey(ref: PointRef): string {
  return `${ref.channel}:${ref.type}:${ref.point}`;
}
