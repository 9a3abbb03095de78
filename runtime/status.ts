/**
 * `voltage status`: the supervisor tree as recorded in Redis, readable also
 * while the runtime is down (then it says so and shows the last known state).
 */
import { KEYS } from './redis/keys.js';
import type { VoltageRedis } from './redis/voltageRedis.js';

export const HEARTBEAT_STALE_MS = 15_000;

function ago(ms: number): string {
  if (ms < 1_000) return `${ms} ms`;
  if (ms < 120_000) return `${(ms / 1_000).toFixed(1)} s`;
  return `${Math.round(ms / 60_000)} min`;
}

/** What the last heartbeat measured, for the fields it had (an older runtime reports fewer). */
function health(root: Record<string, string>): string {
  const parts: string[] = [];
  if (root.rssMb !== undefined) parts.push(`RSS ${root.rssMb} MB, heap ${root.heapUsedMb} MB`);
  if (root.loopDelayP99Ms !== undefined) parts.push(`event-loop delay p99 ${root.loopDelayP99Ms} ms, max ${root.loopDelayMaxMs} ms`);
  if (root.pollToRedisP99Ms !== undefined && root.pollToRedisP99Ms !== '0.0') parts.push(`poll→Redis p50 ${root.pollToRedisP50Ms} ms, p99 ${root.pollToRedisP99Ms} ms`);
  return parts.length ? `; ${parts.join('; ')}` : '';
}

export interface StatusReport { readonly text: string; readonly runtimeUp: boolean; readonly actors: number }

export async function statusReport(redis: VoltageRedis, now: number = Date.now()): Promise<StatusReport> {
  const actors = await redis.actors.list();
  const root = actors.find((a) => a.id === 'root');
  if (!root) return { text: 'no runtime has run against this Redis (no actor tree recorded)\n', runtimeUp: false, actors: 0 };
  const beat = Number(root.heartbeatAt ?? 0);
  const up = root.status === 'running' && now - beat < HEARTBEAT_STALE_MS;
  const lines: string[] = [];
  lines.push(up
    ? `runtime: up (pid ${root.pid}, heartbeat ${ago(now - beat)} ago, started ${ago(now - Number(root.startedAt ?? now))} ago${health(root)})`
    : `runtime: DOWN — last heartbeat ${beat ? `${ago(now - beat)} ago` : 'never'}, last status ${root.status ?? '?'}${root.lastError ? ` (${root.lastError})` : ''}; showing the last recorded state`);
  const q = await redis.telemetry.queueStats();
  lines.push(`queues: ${KEYS.history} ${q.historyLen} entries, ${KEYS.cloud} ${q.cloudLen} entries, dropped ${JSON.stringify(q.dropped)}`);
  lines.push('');
  const byParent = new Map<string, typeof actors>();
  for (const a of actors) {
    const list = byParent.get(a.parent ?? '') ?? [];
    list.push(a);
    byParent.set(a.parent ?? '', list);
  }
  for (const list of byParent.values()) list.sort((a, b) => Number(a.order ?? 0) - Number(b.order ?? 0) || a.id!.localeCompare(b.id!));
  const width = Math.max(...actors.map((a) => a.id!.length)) + 8;
  const describe = (a: Record<string, string>): string => {
    const parts = [(a.status ?? '?').padEnd(9)];
    if (a.strategy) parts.push(a.strategy);
    // While an actor waits out its backoff, its recorded machine state is the one it failed in.
    if (a.state && a.state !== '""') parts.push(`${a.status === 'backoff' ? 'last state' : 'state'} ${a.state}`);
    parts.push(`restarts ${a.restarts ?? 0}`);
    if (a.status === 'backoff') parts.push(`next start in ${ago(Math.max(0, Number(a.backoffUntil) - now))} (backoff ${a.nextBackoffMs} ms)`);
    if (a.context) {
      try {
        const c = JSON.parse(a.context) as Record<string, unknown>;
        const shown = Object.entries(c).filter(([k, v]) => v !== null && v !== 0 && k !== 'lastError' && k !== 'lastPollAt').map(([k, v]) => `${k} ${String(v)}`);
        if (shown.length) parts.push(shown.join(', '));
      } catch { /* a malformed context is shown as nothing */ }
    }
    if (a.lastError) parts.push(`last error: ${a.lastError}`);
    return parts.join('  ');
  };
  const walk = (id: string, prefix: string, last: boolean, depth: number) => {
    const a = actors.find((x) => x.id === id)!;
    const branch = depth === 0 ? '' : `${prefix}${last ? '└─ ' : '├─ '}`;
    lines.push(`${(branch + id).padEnd(width)}${describe(a)}`);
    const kids = byParent.get(id) ?? [];
    kids.forEach((k, i) => walk(k.id!, depth === 0 ? '' : `${prefix}${last ? '   ' : '│  '}`, i === kids.length - 1, depth + 1));
  };
  walk('root', '', true, 0);
  return { text: `${lines.join('\n')}\n`, runtimeUp: up, actors: actors.length };
}
