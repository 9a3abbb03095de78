#!/usr/bin/env node
// Entry of the `voltage` command: loads the TypeScript sources through tsx.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../cli.ts');
main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`voltage: ${err?.stack ?? err}\n`);
    process.exit(1);
  },
);
