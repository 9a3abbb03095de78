/**
 * How tests get a private VictoriaMetrics: on a free loopback port with its own
 * temporary data directory, stopped (and its directory removed) by the caller,
 * or by `privateVictoria` after the file's tests.
 * `forceFlush` makes what it accepted queryable at once rather than within ~1 s.
 */
import { rmSync } from 'node:fs';
import { afterAll, beforeAll } from 'vitest';
import { spawnVictoria, type VictoriaServer } from '../../runtime/victoriaServer.js';

export { spawnVictoria, type VictoriaServer };

export async function forceFlush(url: string): Promise<void> {
  const r = await fetch(`${url}/internal/force_flush`);
  await r.arrayBuffer();
}

/** A VictoriaMetrics for the file's tests: started before them, stopped and its directory removed after. */
export function privateVictoria(): { readonly server: VictoriaServer } {
  const ctx = {} as { server: VictoriaServer };
  beforeAll(async () => {
    ctx.server = await spawnVictoria();
  });
  afterAll(async () => {
    if (!ctx.server) return;
    await ctx.server.stop();
    rmSync(ctx.server.dataDir, { recursive: true, force: true });
  });
  return ctx;
}
