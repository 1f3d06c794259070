#!/usr/bin/env node
// Lays out one built app as its runtime image holds it, in <out>: the pruned node_modules, the
// libs they link to (package.json and dist only), and the app's package.json, dist and own
// node_modules (npm nests a dependency there when versions differ). The Dockerfiles run this
// after `npm prune --omit=dev`; tools/check-images.mjs runs the same steps without Docker.
// Usage: node tools/assemble-app.mjs <app> <out> [extra-file ...]
import { cpSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { basename, join } from 'node:path';

const [app, out, ...extra] = process.argv.slice(2);
if (!app || !out) {
  console.error('usage: assemble-app.mjs <app> <out> [extra-file ...]');
  process.exit(2);
}
const root = join(import.meta.dirname, '..');
mkdirSync(out, { recursive: true });
cpSync(join(root, 'node_modules'), join(out, 'node_modules'), { recursive: true, verbatimSymlinks: true });
for (const lib of readdirSync(join(root, 'libs'))) {
  for (const part of ['package.json', 'dist', 'node_modules']) {
    const from = join(root, 'libs', lib, part);
    if (existsSync(from)) cpSync(from, join(out, 'libs', lib, part), { recursive: true, verbatimSymlinks: true });
  }
}
for (const part of ['package.json', 'dist', 'node_modules']) {
  const from = join(root, 'apps', app, part);
  if (existsSync(from)) cpSync(from, join(out, 'apps', app, part), { recursive: true, verbatimSymlinks: true });
}
for (const f of extra) cpSync(join(root, f), join(out, basename(f)));
console.log(`assembled ${app} in ${out}`);
