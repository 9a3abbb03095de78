/**
 * GET /metrics: Prometheus text — the runtime's (process metrics, points, poll
 * latency), the gateway process's own memory and CPU, and what Redis knows:
 * actors, queues.
 */
import type { Http } from '../http.js';
import { KEYS } from '../../redis/keys.js';
import type { VoltageRedis } from '../../redis/voltageRedis.js';
import { Registry } from 'prom-client';
import type { GatewayHost } from '../server.js';
import { alarmMetricLines, alarmStats } from './alarms.js';

export function metricsRoutes(http: Http, redis: VoltageRedis, feed: { readonly clientCount: number; readonly clientsBehind: number; readonly fellBehind: number }, host: Pick<GatewayHost, 'metrics'>): void {
  http.route('get', '/metrics', 'viewer', async () => {
    const [runtime, actors, queues] = await Promise.all([host.metrics(), redis.actors.list(), redis.telemetry.queueStats()]);
    const cpu = process.cpuUsage();
    const lines: string[] = [
      '# HELP voltage_gateway_process_resident_memory_bytes Resident memory of the gateway process',
      '# TYPE voltage_gateway_process_resident_memory_bytes gauge',
      `voltage_gateway_process_resident_memory_bytes ${process.memoryUsage.rss()}`,
      '# HELP voltage_gateway_process_cpu_seconds_total CPU time of the gateway process',
      '# TYPE voltage_gateway_process_cpu_seconds_total counter',
      `voltage_gateway_process_cpu_seconds_total ${((cpu.user + cpu.system) / 1e6).toFixed(3)}`,
      '# HELP voltage_actor_restarts_total Restarts of each actor by its supervisor',
      '# TYPE voltage_actor_restarts_total counter',
      ...actors.map((a) => `voltage_actor_restarts_total{actor="${a.id}"} ${Number(a.restarts ?? 0)}`),
      '# HELP voltage_actor_status Status of each actor: 1 for the status it is in',
      '# TYPE voltage_actor_status gauge',
      ...actors.map((a) => `voltage_actor_status{actor="${a.id}",status="${a.status ?? 'unknown'}"} 1`),
      '# HELP voltage_queue_length Entries waiting in an outbox stream',
      '# TYPE voltage_queue_length gauge',
      `voltage_queue_length{queue="${KEYS.history}"} ${queues.historyLen}`,
      `voltage_queue_length{queue="${KEYS.cloud}"} ${queues.cloudLen}`,
      '# HELP voltage_queue_dropped_total Outbox entries trimmed by MAXLEN',
      '# TYPE voltage_queue_dropped_total counter',
      ...Object.entries(queues.dropped).map(([k, v]) => `voltage_queue_dropped_total{queue="${k.replace(':dropped', '')}"} ${Number(v)}`),
      '# HELP voltage_ws_clients WebSocket clients connected',
      '# TYPE voltage_ws_clients gauge',
      `voltage_ws_clients ${feed.clientCount}`,
      '# HELP voltage_ws_clients_behind WebSocket clients whose send buffer is full: they skip deltas until they drain',
      '# TYPE voltage_ws_clients_behind gauge',
      `voltage_ws_clients_behind ${feed.clientsBehind}`,
      '# HELP voltage_ws_clients_fell_behind_total Times a client fell behind: its deltas were dropped until it drained, then it got a snapshot',
      '# TYPE voltage_ws_clients_fell_behind_total counter',
      `voltage_ws_clients_fell_behind_total ${feed.fellBehind}`,
    ];
    lines.push(...alarmMetricLines(await alarmStats(redis)));
    return { status: 200, contentType: Registry.PROMETHEUS_CONTENT_TYPE, body: `${runtime}${lines.join('\n')}\n` };
  });
}
