#!/usr/bin/env node
// Proves that the Nx module-boundary lint rule is live: it writes files that break the
// dependency direction of docs/architecture.md, lints them, and fails unless ESLint reports
// each one. (Run without a project graph, the rule silently skips itself.)
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..');
const cases = [
  ['libs/registry-core/src/__boundary_check__.ts', "import { startProxy } from '@registry-proxy/proxy';\nexport const x = startProxy;\n", 'a lib importing an app'],
  ['libs/registry-core/src/__boundary_check2__.ts', "import { StaticStrategy } from '@registry-proxy/auth-static';\nexport const y = StaticStrategy;\n", 'a cycle between libs'],
  ['libs/auth-static/src/__boundary_check__.ts', "import { x } from '../../registry-core/src/reference.js';\nexport const z = x;\n", 'a deep relative import into another package'],
  [
    'apps/proxy/src/__boundary_check__.ts',
    "import { freePort } from '@registry-proxy/testing';\nexport const t = freePort;\n",
    'shipped code importing the test support library',
    /test support is for tests only/,
  ],
  ['libs/testing/src/__boundary_check__.ts', "import { createApp } from '@registry-proxy/proxy';\nexport const a = createApp;\n", 'the test library importing an app'],
];
let failed = 0;
for (const [file, text, what, expected = /@nx\/enforce-module-boundaries/] of cases) {
  const path = join(root, file);
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, text);
  let out = '';
  try {
    execFileSync('npx', ['eslint', '--no-warn-ignored', file], { cwd: root, stdio: 'pipe', env: { ...process.env, NX_DAEMON: 'false', NX_NO_CLOUD: 'true' } });
  } catch (err) {
    out = String(err.stdout ?? '') + String(err.stderr ?? '');
  } finally {
    rmSync(path);
  }
  const caught = expected.test(out) && !/No cached ProjectGraph/.test(out);
  console.log(`${caught ? 'ok  ' : 'FAIL'} boundary rule catches ${what}`);
  if (!caught) failed++;
}
process.exit(failed ? 1 : 0);
