/**
 * When a channel polls: on a fixed grid, not "pollMs after the last poll
 * started". The grid is anchored on the wall clock: a channel polls at the
 * times t with t ≡ phase (mod pollMs), whenever it was started or restarted.
 * The runtime spreads the phases of the channels that share a poll interval
 * evenly over it (`spreadPhases`), so that their reads and their c2m calls
 * never come in bursts; a channel started on its own takes a phase from its
 * id. A poll delayed by a busy event loop or a slow device does not shift the
 * channel's later polls, so channels that were spread stay spread; slots that
 * passed entirely are skipped and counted as missed polls.
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

/**
 * Phases for channels: those with the same poll interval are spaced evenly over
 * it in the order given (n channels of 100 ms: one every 100/n ms).
 */
export function spreadPhases(channels: ReadonlyArray<{ readonly id: string; readonly pollMs: number }>): Map<string, number> {
  const groups = new Map<number, string[]>();
  for (const c of channels) {
    const g = groups.get(c.pollMs);
    if (g) g.push(c.id);
    else groups.set(c.pollMs, [c.id]);
  }
  const phases = new Map<string, number>();
  for (const [pollMs, ids] of groups) ids.forEach((id, i) => phases.set(id, Math.floor((i * pollMs) / ids.length)));
  return phases;
}

/** The grid of slots t ≡ phaseMs (mod pollMs), from the first slot at or after `now`. */
export function newGrid(pollMs: number, phaseMs: number, now: number): PollGrid {
  const wait = (((phaseMs - now) % pollMs) + pollMs) % pollMs;
  return { pollMs, nextDueAt: now + wait, missed: 0 };
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
