/**
 * `voltage status`: the supervisor tree as recorded in Redis, readable also
 * while the runtime is down (then it says so and shows the last known state).
 * `--watch` redraws it every interval, for operators on SSH: in place on a
 * terminal, one frame after another when the output is a file or a pipe.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { errorMessage } from './errors.js';
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
  if (root.pollToRedisP99Ms !== undefined && root.pollToRedisP99Ms !== '0.0')
    parts.push(`poll→Redis p50 ${root.pollToRedisP50Ms} ms, p99 ${root.pollToRedisP99Ms} ms`);
  return parts.length ? `; ${parts.join('; ')}` : '';
}

export interface StatusReport {
  readonly text: string;
  readonly runtimeUp: boolean;
  readonly actors: number;
}

export async function statusReport(redis: VoltageRedis, now: number = Date.now()): Promise<StatusReport> {
  const actors = await redis.actors.list();
  const root = actors.find((a) => a.id === 'root');
  if (!root) return { text: 'no runtime has run against this Redis (no actor tree recorded)\n', runtimeUp: false, actors: 0 };
  const beat = Number(root.heartbeatAt ?? 0);
  const up = root.status === 'running' && now - beat < HEARTBEAT_STALE_MS;
  const lines: string[] = [];
  lines.push(
    up
      ? `runtime: up (pid ${root.pid}, heartbeat ${ago(now - beat)} ago, started ${ago(now - Number(root.startedAt ?? now))} ago${health(root)})`
      : `runtime: DOWN — last heartbeat ${beat ? `${ago(now - beat)} ago` : 'never'}, last status ${root.status ?? '?'}${root.lastError ? ` (${root.lastError})` : ''}; showing the last recorded state`,
  );
  const q = await redis.telemetry.outboxStats();
  const groups = q.groups.map((g) => `${g.name} ${g.pending} pending${g.lag !== null ? `, ${g.lag} unread` : ''}`).join('; ');
  lines.push(
    `outbox: ${q.length} entries, ${(q.bytes / 2 ** 20).toFixed(1)} MB, ${q.dropped} dropped${q.dropped > 0 ? ' (!)' : ''}; ${groups ? `consumers: ${groups}` : 'no consumer (nothing is written to it)'}`,
  );
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
    // Why a running actor is not where it should be (a cloud link refused by its broker, a channel's device), from its
    // machine's context; the actor's own last failure, when it has one, comes first.
    let why = a.lastError;
    if (a.context) {
      try {
        const c = JSON.parse(a.context) as Record<string, unknown>;
        const shown = Object.entries(c)
          .filter(([k, v]) => v !== null && v !== 0 && k !== 'lastError' && k !== 'lastPollAt')
          .map(([k, v]) => `${k} ${String(v)}`);
        if (shown.length) parts.push(shown.join(', '));
        if (!why && typeof c.lastError === 'string') why = c.lastError;
      } catch {
        /* a malformed context is shown as nothing */
      }
    }
    if (a.redisOutageMs) parts.push(`last Redis outage ${ago(Number(a.redisOutageMs))}, ${a.unwrittenPolls ?? 0} poll(s) not written in all`);
    if (why) parts.push(`last error: ${why}`);
    return parts.join('  ');
  };
  const walk = (id: string, prefix: string, last: boolean, depth: number) => {
    const a = actors.find((x) => x.id === id)!;
    const branch = depth === 0 ? '' : `${prefix}${last ? '└─ ' : '├─ '}`;
    lines.push(`${(branch + id).padEnd(width)}${describe(a)}`);
    const kids = byParent.get(id) ?? [];
    kids.forEach((k, i) => {
      walk(k.id!, depth === 0 ? '' : `${prefix}${last ? '   ' : '│  '}`, i === kids.length - 1, depth + 1);
    });
  };
  walk('root', '', true, 0);
  return { text: `${lines.join('\n')}\n`, runtimeUp: up, actors: actors.length };
}

/** Where `watchStatus` draws: a terminal (`isTTY`) is redrawn in place; anything else gets each frame appended. */
export interface StatusOutput {
  write(text: string): unknown;
  readonly isTTY?: boolean;
}

export interface WatchOptions {
  readonly intervalMs: number;
  readonly out: StatusOutput;
  /** Settles when the watch is to end (Ctrl-C, SIGTERM, the reader of a pipe gone). */
  readonly stop: Promise<unknown>;
}

const CURSOR_HOME = '\x1b[H';
/** A tick's delay rejects only when the stop aborts it (AbortError): the loop then ends by the signal. */
function endedByTheStop(): undefined {
  return undefined;
}

const CLEAR_SCREEN = '\x1b[2J';
const CLEAR_TO_EOL = '\x1b[K';
const CLEAR_BELOW = '\x1b[J';

/**
 * Draws the tree every `intervalMs` until `stop` settles; resolves with the number of frames drawn.
 * A read that takes longer than the interval (Redis gone: ioredis queues the commands until it is
 * back) gives a frame saying so instead of freezing the last one, and never delays the stop.
 */
export async function watchStatus(redis: VoltageRedis, opts: WatchOptions): Promise<number> {
  const ac = new AbortController();
  const stopped = opts.stop.then(() => {
    ac.abort();
    return undefined;
  });
  const tick = (ms: number) => delay(ms, undefined, { signal: ac.signal }).catch(endedByTheStop);
  const waitMs = Math.max(opts.intervalMs, 2_000);
  let pending: Promise<string> | undefined;
  let frames = 0;
  if (opts.out.isTTY) opts.out.write(CURSOR_HOME + CLEAR_SCREEN);
  while (!ac.signal.aborted) {
    const started = Date.now();
    // One read at a time: while Redis does not answer, the read in flight is awaited again, not doubled.
    if (!pending) {
      const read = statusReport(redis, started).then(
        (r) => r.text,
        (e: unknown) => `cannot read the tree: ${errorMessage(e)}\n`,
      );
      pending = read;
      void read.finally(() => {
        if (pending === read) pending = undefined;
      });
    }
    const frameDone = new AbortController();
    const silence = delay(waitMs, undefined, { signal: AbortSignal.any([ac.signal, frameDone.signal]) }).then(
      () => `Redis does not answer (no reply within ${waitMs} ms); still trying\n`,
      () => undefined,
    );
    const text = await Promise.race([pending, stopped, silence]);
    frameDone.abort();
    if (ac.signal.aborted || text === undefined) break;
    const frame = `voltage status --watch: ${new Date(started).toISOString()}, every ${opts.intervalMs} ms; Ctrl-C stops\n\n${text}`;
    if (opts.out.isTTY) {
      // Home and overwrite line by line, then clear what the last frame left below: no flicker.
      opts.out.write(CURSOR_HOME + frame.replace(/\n/g, `${CLEAR_TO_EOL}\n`) + CLEAR_BELOW);
    } else {
      opts.out.write(`${frames > 0 ? '\n' : ''}${frame}`);
    }
    frames++;
    await tick(Math.max(0, opts.intervalMs - (Date.now() - started)));
  }
  return frames;
}
