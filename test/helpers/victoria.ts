/**
 * How tests get a private VictoriaMetrics: on a free loopback port with its own
 * temporary data directory, stopped (and its directory removed) by the caller.
 * `forceFlush` makes what it accepted queryable at once rather than within ~1 s.
 */
export { spawnVictoria, type VictoriaServer } from '../../runtime/victoriaServer.js';

export async function forceFlush(url: string): Promise<void> {
  const r = await fetch(`${url}/internal/force_flush`);
  await r.arrayBuffer();
}
