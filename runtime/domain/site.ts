/** The site as the runtime describes it to Redis (written at start by runtime/runtime.ts describeSite). */
import type { PointType } from '../config/site.js';

export interface SiteDescription {
  readonly site: string;
  readonly json: string;
  /** channel:type:point → model:name (measurements) */
  readonly mapping: ReadonlyMap<string, string>;
  /** model:name → channel:type:point|min|max (controls and the point they write) */
  readonly controls: ReadonlyMap<string, string>;
  /** The site's model ids (m2c tells an unknown model from a model without that control). */
  readonly models: readonly string[];
}

/** What `site:config` holds. */
export interface SiteJson {
  readonly site: string;
  readonly channels: ReadonlyArray<{
    id: string;
    name: string;
    protocol: string;
    pollMs: number;
    points: ReadonlyArray<{ type: PointType; id: number; name: string | null; unit: string | null }>;
  }>;
  readonly models: ReadonlyArray<{
    id: string;
    name: string;
    nature: string;
    measurements: ReadonlyArray<{ name: string; unit: string | null }>;
    controls: ReadonlyArray<{ name: string; point: string; min: number | null; max: number | null }>;
    calculations: ReadonlyArray<{ name: string; expr: string; unit: string | null }>;
  }>;
}
