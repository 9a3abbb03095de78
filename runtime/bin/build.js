#!/usr/bin/env node
// Bundles the runtime into dist/voltage.mjs (run by `npm ci` through `prepare`).
// The bundle starts faster and uses less memory than transpiling on load;
// runtime/bin/voltage.js falls back to the sources when the bundle is stale.
import { build } from 'esbuild';

await build({
  entryPoints: ['runtime/cli.ts'],
  outfile: 'dist/voltage.mjs',
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  packages: 'external',
  sourcemap: 'linked',
  logLevel: 'warning',
});
