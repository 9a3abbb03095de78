#!/usr/bin/env node
// Bundles the runtime into dist/voltage.mjs (run by `npm ci` through `prepare`).
// The bundle starts faster and uses less memory than transpiling on load;
// runtime/bin/voltage.js falls back to the sources when the bundle is stale.
// Also bundles the pages (ui/) into dist/ui, which the gateway serves under /ui/:
// minified, for browsers, with nothing fetched from elsewhere at run time.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, readdirSync } from 'node:fs';

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

mkdirSync('dist/ui', { recursive: true });
await build({
  entryPoints: ['ui/dashboard.ts', 'ui/actors.ts'],
  outdir: 'dist/ui',
  bundle: true,
  minify: true,
  platform: 'browser',
  format: 'esm',
  target: ['chrome100', 'firefox100', 'safari15'],
  logLevel: 'warning',
});
for (const f of readdirSync('ui')) if (/\.(html|css|svg)$/.test(f)) copyFileSync(`ui/${f}`, `dist/ui/${f}`);
