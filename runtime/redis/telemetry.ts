/** Telemetry in Redis: a channel's poll batch (c2m), a model's calculated values, and reading them back. */
import type { PointType } from '../config/site.js';
import { C2mBatch } from '../domain/c2mBatch.js';
import type { C2mResult, ModelValue, PointSample, QueueStats, ValueRecord } from '../domain/telemetry.js';
import { redisCall, type RedisCore } from './core.js';
import { valueRecords } from './encoding.js';
import { KEYS } from './keys.js';

export interface QueueLimits { readonly historyMaxLen: number; readonly cloudMaxLen: number }

export class TelemetryRedis {
  constructor(private readonly core: RedisCore, private readonly limits: QueueLimits) {}

  /** One poll's points of one channel, atomically (see c2m in lua/telemetry.lua). */
  async c2m(channel: string, ts: number, points: C2mBatch | readonly PointSample[]): Promise<C2mResult> {
    const batch = points instanceof C2mBatch ? points : C2mBatch.of(points);
    const r = await this.core.fcall('c2m', { channel, ts, historyMaxLen: this.limits.historyMaxLen, cloudMaxLen: this.limits.cloudMaxLen, points: batch.bytes() });
    return { points: r[0], models: r[1], historyDropped: r[2], cloudDropped: r[3] };
  }

  /** Calculated values of one model. */
  modelSet(model: string, ts: number, values: readonly ModelValue[]): Promise<number> {
    return this.core.fcall('model_set', { model, ts, historyMaxLen: this.limits.historyMaxLen, values });
  }

  /** The values of one value hash (channel type or model) with their timestamps and qualities. */
  async values(hashBase: string): Promise<Map<string, ValueRecord>> {
    const client = this.core.client;
    const [v, t, q] = (await redisCall('HGETALL', () => client.multi().hgetall(hashBase).hgetall(KEYS.timestamps(hashBase)).hgetall(KEYS.qualities(hashBase)).exec())) ?? [];
    return valueRecords((v?.[1] ?? {}) as Record<string, string>, (t?.[1] ?? {}) as Record<string, string>, (q?.[1] ?? {}) as Record<string, string>);
  }

  modelValues(model: string): Promise<Map<string, ValueRecord>> {
    return this.values(KEYS.model(model));
  }

  channelValues(channel: string, type: PointType): Promise<Map<string, ValueRecord>> {
    return this.values(KEYS.channel(channel, type));
  }

  /** The outboxes' lengths and what their bounds dropped. */
  async queueStats(): Promise<QueueStats> {
    const client = this.core.client;
    const [h, c, d] = (await redisCall('XLEN', () => client.multi().xlen(KEYS.history).xlen(KEYS.cloud).hgetall(KEYS.queueStats).exec())) ?? [];
    return { historyLen: Number(h?.[1] ?? 0), cloudLen: Number(c?.[1] ?? 0), dropped: (d?.[1] ?? {}) as Record<string, string> };
  }
}
