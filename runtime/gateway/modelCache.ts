/**
 * The gateway's copy of every model's values, so that a GET does not go to
 * Redis: loaded from the model hashes at start and again whenever the
 * subscriber connection comes back (notifications may have been missed), and
 * kept current from the same `modsrv:*:update` notifications the feed uses.
 */
import type { Quality, ValueRecord } from '../domain/telemetry.js';
import type { VoltageRedis } from '../redis/voltageRedis.js';

export interface ModelUpdateMessage { ts?: number; v?: Record<string, number>; q?: Record<string, string> }

export class ModelCache {
  private readonly models = new Map<string, Map<string, ValueRecord>>();
  /** Bumped at every change of a model, so that what is derived from its values can be kept until then. */
  private readonly versions = new Map<string, number>();
  private ready = false;

  constructor(private readonly redis: VoltageRedis, private readonly ids: readonly string[]) {}

  async load(): Promise<void> {
    this.ready = false;
    for (const id of this.ids) {
      this.models.set(id, await this.redis.telemetry.modelValues(id));
      this.bump(id);
    }
    this.ready = true;
  }

  /** Applies a notification; returns the records it changed (what the WebSocket feed sends), or undefined for a model it does not hold. */
  apply(model: string, m: ModelUpdateMessage): Record<string, ValueRecord> | undefined {
    const values = this.models.get(model);
    if (!values) return undefined;
    this.bump(model);
    const ts = m.ts ?? null;
    const changed: Record<string, ValueRecord> = {};
    for (const [name, v] of Object.entries(m.v ?? {})) changed[name] = { value: v, ts, quality: (m.q?.[name] as Quality | undefined) ?? 'good' };
    // A quality-only mark (the device stopped answering) keeps the last value, as c2m does in Redis.
    for (const [name, q] of Object.entries(m.q ?? {})) changed[name] ??= { value: values.get(name)?.value ?? null, ts, quality: q as Quality };
    for (const name in changed) values.set(name, changed[name]!);
    return changed;
  }

  private bump(model: string): void {
    this.versions.set(model, (this.versions.get(model) ?? 0) + 1);
  }

  /** The version of a model's values (changes whenever they do), or undefined while (re)loading. */
  version(model: string): number | undefined {
    return this.ready ? this.versions.get(model) : undefined;
  }

  /** The values of a model, or undefined while (re)loading: then ask Redis. */
  get(model: string): ReadonlyMap<string, ValueRecord> | undefined {
    return this.ready ? this.models.get(model) : undefined;
  }
}
