/**
 * GET /metrics: Prometheus text — the runtime's (process metrics, points, poll
 * latency), the gateway process's own memory and CPU, and what Redis knows:
 * actors, queues.
 */
import type { Http } from '../http.js';
import type { VoltageRedis } from '../../redis/voltageRedis.js';
import { Registry } from 'prom-client';
import type { GatewayHost } from '../server.js';
import type { ActorRecord } from '../../domain/actors.js';
import { alarmMetricLines, alarmStats } from './alarms.js';
import { cloudLinkActors, cloudLinkViews, type CloudLinkView } from './cloud.js';

export function metricsRoutes(
  http: Http,
  redis: VoltageRedis,
  feed: { readonly clientCount: number; readonly clientsBehind: number; readonly fellBehind: number },
  host: Pick<GatewayHost, 'metrics'>,
): void {
  http.route('get', '/metrics', 'viewer', async () => {
    const [runtime, actors, queues] = await Promise.all([host.metrics(), redis.actors.list(), redis.telemetry.outboxStats()]);
    const views = await cloudLinkViews(redis, actors);
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
      '# HELP voltage_outbox_entries Entries in the outbox stream',
      '# TYPE voltage_outbox_entries gauge',
      `voltage_outbox_entries ${queues.length}`,
      '# HELP voltage_outbox_bytes Size of the outbox stream (payload bytes, estimated after trims)',
      '# TYPE voltage_outbox_bytes gauge',
      `voltage_outbox_bytes ${queues.bytes}`,
      '# HELP voltage_outbox_dropped_total Unread outbox entries dropped by its bound in bytes',
      '# TYPE voltage_outbox_dropped_total counter',
      `voltage_outbox_dropped_total ${queues.dropped}`,
      '# HELP voltage_outbox_pending Entries delivered to a consumer group and not yet acknowledged',
      '# TYPE voltage_outbox_pending gauge',
      ...queues.groups.map((g) => `voltage_outbox_pending{group="${g.name}"} ${g.pending}`),
      '# HELP voltage_outbox_lag Entries not yet delivered to a consumer group',
      '# TYPE voltage_outbox_lag gauge',
      ...queues.groups.filter((g) => g.lag !== null).map((g) => `voltage_outbox_lag{group="${g.name}"} ${g.lag}`),
      ...cloudLinkLines(views, actors),
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

/**
 * Each cloud link's counters, from its actor's recorded context (actors/cloud/CloudActor.ts summarize), and its parked
 * messages from its view (`GET /api/v1/cloud`'s reading: the parked stream's length, `cloud:{link}:stats`).
 */
function cloudLinkLines(views: readonly CloudLinkView[], actors: readonly ActorRecord[]): string[] {
  if (views.length === 0) return [];
  const contexts = new Map(cloudLinkActors(actors).map(({ link, c }) => [link, c]));
  type Of = (v: CloudLinkView, c: Record<string, unknown>) => number;
  const metric = (name: string, type: string, help: string, of: string | Of) => [
    `# HELP ${name} ${help}`,
    `# TYPE ${name} ${type}`,
    ...views.map((v) => {
      const c = contexts.get(v.id) ?? {};
      return `${name}{link="${v.id}"} ${typeof of === 'string' ? Number(c[of] ?? 0) : of(v, c)}`;
    }),
  ];
  return [
    ...metric('voltage_cloud_published_total', 'counter', 'Messages a cloud link published and the broker PUBACKed (this incarnation)', 'published'),
    ...metric('voltage_cloud_resent_total', 'counter', 'Messages sent again after a reconnect (a subscriber may see them twice; same seq)', 'resent'),
    ...metric('voltage_cloud_dropped_total', 'counter', 'Outbox entries a cloud link dropped unsent: its backlog passed maxBacklogMB', 'dropped'),
    ...metric('voltage_cloud_not_taken_total', 'counter', 'Outbox entries a refuse-new cloud link did not take: its backlog was past maxBacklogMB', 'notTaken'),
    ...metric(
      'voltage_cloud_refused_total',
      'counter',
      'Messages the broker refused (MQTT 5 reason code >= 0x80; parked in cloud:<link>:refused) and batches an HTTP cloud refused (retried)',
      'refused',
    ),
    ...metric('voltage_cloud_parked', 'gauge', 'Messages a cloud link has parked now (cloud:<link>:refused)', (v) => v.parked),
    ...metric('voltage_cloud_unparked_total', 'counter', 'Parked messages the cloud took when sent again (deleted from the parked stream)', (v) => v.unparked),
    ...metric('voltage_cloud_refused_again_total', 'counter', 'Parked messages the cloud refused again when sent again (left parked)', (v) => v.refusedAgain),
    ...metric('voltage_cloud_lag_entries', 'gauge', 'Outbox entries a cloud link has not acknowledged (unsent or awaiting PUBACK)', 'lag'),
    ...metric('voltage_cloud_seq', 'gauge', 'The last seq a cloud link had PUBACKed', 'seq'),
  ];
}
