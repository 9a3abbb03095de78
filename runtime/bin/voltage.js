#!/usr/bin/env -S node --max-old-space-size=256 --max-semi-space-size=8 --single-threaded-gc
// The heap cap keeps the runtime within an edge box's budget: V8 otherwise lets garbage
// promoted under a high allocation rate grow the old space to gigabytes before it collects.
// It is 256 MB, not closer to the live heap: at 100k points/s the site's configuration kept
// ~100-125 MB live, and under a 168 MB cap (its limit ~40 MB above that) V8 ran mark-compacts
// of 40-70 ms several times a minute; with 256 MB they stayed under ~20 ms (docs/benchmarks.md
// round 12, "GC stalls"). Since round 13 ("heap") that site keeps ~60 MB live (~76 MB with
// 10,000 alarms) and the heap stays far below the cap: over 60 s with the alarms a 160 MB cap
// gave the same RSS (164 -> 180 MB against 163 -> 178) and no better a tail (p99 46 against
// 33 ms in that pair), so the cap did not come down (measured).
// The young generation is capped at 8 MB a semi-space (V8 grows it to 16): 13-16 MB less
// RSS at 100k points/s, and no change in latency (measured).
// The GC runs on the main thread only (--single-threaded-gc). V8's helper threads (concurrent
// marking, parallel scavenge and compaction) otherwise take up to a second core in bursts around
// each mark-compact, and on a small box that is the core Redis needs: at 100k points/s with 10,000
// alarms on 2 cores, the polls whose c2m took 20 ms or more were those where the helpers took
// 0.5-0.75 of a core while Redis waited for a CPU. Without them the kernel's p99 went from 18-31 to
// 16-22 ms and the alarms' from 27-47 to 21-29 ms, at the same CPU (docs/benchmarks.md, round 16,
// "latency tail"); the GC's pauses on the main thread are longer (a scavenge ~3.5 instead of ~2.7 ms).
//
// Entry of the `voltage` command. Runs the bundle built by `npm ci` (dist/voltage.mjs)
// when it is newer than every source file; otherwise the TypeScript sources through tsx.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const root = fileURLToPath(new URL('../../', import.meta.url));
// `voltage gateway-child` (the gateway's own process, forked by the runtime) has a bundle of its own:
// it imports only what the gateway needs, so a restarted gateway serves sooner.
const gatewayChild = process.argv[2] === 'gateway-child';
const bundle = join(root, 'dist', gatewayChild ? 'gateway-child.mjs' : 'voltage.mjs');

function newestSource(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSource(path));
    else if (/\.(ts|lua)$/.test(entry.name)) newest = Math.max(newest, statSync(path).mtimeMs);
  }
  return newest;
}

function bundleIsFresh() {
  if (!existsSync(bundle) || process.env.VOLTAGE_FROM_SOURCE === '1') return false;
  const built = statSync(bundle).mtimeMs;
  return ['runtime', 'actors', 'machines', 'lua'].every((d) => newestSource(join(root, d)) <= built);
}

let mod;
if (bundleIsFresh()) {
  mod = await import(bundle);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  mod = await import(gatewayChild ? '../gateway/child.ts' : '../cli.ts');
}
// Writes to a pipe are asynchronous: exit once stdout and stderr have taken what was written, or
// process.exit() cuts it (`voltage schema | jq` got the first 64 kB).
const exit = (code) => process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
(gatewayChild ? mod.runGatewayChild() : mod.main(process.argv.slice(2))).then(exit, (err) => {
  process.stderr.write(`voltage: ${err?.stack ?? err}\n`);
  exit(1);
});
