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

/**
 * `phaseMs`: the channel's offset in its period (see pollPhases); by default one
 * from its id. The grid is anchored on the clock (slots at phaseMs + k·pollMs), not
 * on when the channel started, so channels of one phase poll together whenever
 * each of them (re)started.
 */
export function newGrid(channelId: string, pollMs: number, now: number, phaseMs = staggerMs(channelId, pollMs)): PollGrid {
  const slot = now - ((((now - phaseMs) % pollMs) + pollMs) % pollMs);
  return { pollMs, nextDueAt: slot >= now ? slot : slot + pollMs, missed: 0 };
}

/**
 * Poll phases for a site: channels with the same period poll together, in as few
 * phases as keep each phase under `groupPoints` points, spread evenly over the
 * period. Polls that end together share one c2m call (group commit: one round trip
 * and one wake-up of Redis and of every subscriber for many channels), while a
 * large site still spreads its load over the period. groupPoints 0: every channel
 * its own phase from its id (spread as before).
 */
export function pollPhases(
  channels: readonly { readonly id: string; readonly pollMs: number; readonly points: readonly unknown[] }[],
  groupPoints: number,
): Map<string, number> {
  const phases = new Map<string, number>();
  const byPeriod = new Map<number, (typeof channels)[number][]>();
  for (const c of channels) {
    if (groupPoints <= 0) phases.set(c.id, staggerMs(c.id, c.pollMs));
    else {
      const list = byPeriod.get(c.pollMs);
      if (list) list.push(c);
      else byPeriod.set(c.pollMs, [c]);
    }
  }
  for (const [pollMs, list] of byPeriod) {
    const total = list.reduce((n, c) => n + Math.max(1, c.points.length), 0);
    const slots = Math.min(list.length, Math.max(1, Math.ceil(total / groupPoints)));
    // Largest first, each to the lightest phase: phases even in points, stable for a given site.
    const sorted = [...list].sort((a, b) => b.points.length - a.points.length || (a.id < b.id ? -1 : 1));
    const load = new Array<number>(slots).fill(0);
    for (const c of sorted) {
      let k = 0;
      for (let j = 1; j < slots; j++) if (load[j]! < load[k]!) k = j;
      load[k]! += Math.max(1, c.points.length);
      phases.set(c.id, Math.floor((k * pollMs) / slots));
    }
  }
  return phases;
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
