#!/usr/bin/env node
// Installed entry point: runs the production build (dist/, `npm run build`) when there is one, else the
// TypeScript sources through tsx. WALLBOX_FROM_SOURCE=1 forces the sources (development).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const built = fileURLToPath(new URL('../dist/src/cli.js', import.meta.url));
let main;
if (existsSync(built) && process.env.WALLBOX_FROM_SOURCE !== '1') {
  ({ main } = await import(built));
} else {
  const { register } = await import('tsx/esm/api');
  register();
  ({ main } = await import('../src/cli.ts'));
}
process.exitCode = await main(process.argv.slice(2));
