/**
 * When a channel polls: on a fixed grid (first slot staggered by channel id),
 * not "pollMs after the last poll started". A poll delayed by a busy event loop
 * or a slow device does not shift the channel's later polls, so channels that
 * were spread stay spread; slots that passed entirely are skipped and counted
 * as missed polls.
 */
export interface PollGrid {
  readonly pollMs: number;
  /** The start time of the next slot. */
  nextDueAt: number;
  missed: number;
}

/** A stable offset in [0, pollMs) from the channel id, so that channels spread their polls. */
export function staggerMs(channelId: string, pollMs: number): number {
  let h = 2166136261;
  for (let i = 0; i < channelId.length; i++) h = Math.imul(h ^ channelId.charCodeAt(i), 16777619);
  return (h >>> 0) % pollMs;
}

export function newGrid(channelId: string, pollMs: number, now: number): PollGrid {
  return { pollMs, nextDueAt: now + staggerMs(channelId, pollMs), missed: 0 };
}

/** How long to wait for the next slot. */
export function delayToSlot(grid: PollGrid, now: number): number {
  return Math.max(0, grid.nextDueAt - now);
}

/** A poll starts at `now`: claim its slot; returns how many whole slots were missed before it. */
export function claimSlot(grid: PollGrid, now: number): number {
  const late = now - grid.nextDueAt;
  const skipped = late >= grid.pollMs ? Math.floor(late / grid.pollMs) : 0;
  grid.missed += skipped;
  grid.nextDueAt += (skipped + 1) * grid.pollMs;
  return skipped;
}
