/**
 * Each actor's last transitions, for the visualizer: a stream
 * `actor:{id}:transitions` per actor, capped near TRANSITIONS_MAXLEN entries
 * (MAXLEN ~: Redis trims whole nodes, cheaply), so it survives a restart of the
 * actor or of the runtime and never grows. A diagnostic journal, not a
 * committed state: a plain XADD, and a lost entry is no harm.
 */
import type { Redis } from 'ioredis';

export const TRANSITIONS_MAXLEN = 200;

export const transitionsKey = (actorId: string) => `actor:${actorId}:transitions`;

export interface TransitionEntry {
  readonly ts: number;
  /** The event type ('xstate.after.…', 'channel.polled'), or what the supervisor did: 'failed', 'backoff', 'started'. */
  readonly event: string;
  /** State values as JSON ('"polling"', '{"ready":"idle"}'); '' when not known. */
  readonly from: string;
  readonly to: string;
  readonly error?: string;
}

export async function appendTransition(client: Redis, actorId: string, e: TransitionEntry): Promise<void> {
  const fields = ['ts', String(e.ts), 'event', e.event, 'from', e.from, 'to', e.to];
  if (e.error) fields.push('error', e.error);
  await client.xadd(transitionsKey(actorId), 'MAXLEN', '~', TRANSITIONS_MAXLEN, '*', ...fields);
}

/** The newest `count` entries, newest first. */
export async function readTransitions(client: Redis, actorId: string, count = 50): Promise<TransitionEntry[]> {
  const rows = await client.xrevrange(transitionsKey(actorId), '+', '-', 'COUNT', count);
  return rows.map(([, flat]) => {
    const f: Record<string, string> = {};
    for (let i = 0; i + 1 < flat.length; i += 2) f[flat[i]!] = flat[i + 1]!;
    return { ts: Number(f.ts), event: f.event ?? '', from: f.from ?? '', to: f.to ?? '', ...(f.error ? { error: f.error } : {}) };
  });
}
