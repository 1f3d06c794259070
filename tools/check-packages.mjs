#!/usr/bin/env node
// Each published lib must work alone: `npm pack` it, install the tarballs into an empty
// project, import every package through its public entry as ESM and as CommonJS (require of
// ESM, Node 20.19+), typecheck an import of each with tsc, and lint the package with publint.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..');
const libs = readdirSync(join(root, 'libs'))
  .map((d) => ({ dir: join(root, 'libs', d), pkg: JSON.parse(readFileSync(join(root, 'libs', d, 'package.json'), 'utf8')) }))
  .filter((l) => !l.pkg.private);
const work = mkdtempSync(join(tmpdir(), 'rp-packages-'));
const run = (cmd, args, cwd) => execFileSync(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] }).toString();
let failed = 0;
const check = (what, fn) => {
  try {
    fn();
    console.log(`ok   ${what}`);
  } catch (err) {
    failed++;
    console.log(`FAIL ${what}\n${String(err.stdout ?? '')}${String(err.stderr ?? err.message)}`.trimEnd());
  }
};

try {
  const tarballs = libs.map((l) => {
    for (const f of ['README.md', 'LICENSE']) readFileSync(join(l.dir, f)); // present in every package
    const out = JSON.parse(run('npm', ['pack', '--json', '--pack-destination', work], l.dir))[0];
    return { name: l.pkg.name, file: join(work, out.filename), files: out.files.map((f) => f.path) };
  });
  for (const t of tarballs) {
    check(`${t.name}: the tarball holds dist, README and LICENSE, and no tests or sources`, () => {
      if (!t.files.includes('README.md') || !t.files.includes('LICENSE') || !t.files.includes('dist/index.js') || !t.files.includes('dist/index.d.ts')) throw new Error(`files: ${t.files.join(', ')}`);
      const bad = t.files.filter((f) => /\.test\.|^src\/.*\.ts$/.test(f));
      if (bad.length) throw new Error(`unwanted: ${bad.join(', ')}`);
    });
    check(`${t.name}: publint`, () => run(process.execPath, [join(root, 'node_modules/publint/src/cli.js'), t.file.replace(/\.tgz$/, '') === t.file ? t.file : t.file, '--strict'], root));
  }
  const app = join(work, 'consumer');
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'commonjs' }));
  run(
    'npm',
    ['install', '--no-audit', '--no-fund', '--ignore-scripts', ...tarballs.map((t) => t.file), '@aws-sdk/client-ecr@3.1169.0', '@grpc/grpc-js@1.14.7', 'typescript@5.9.3', '@types/node@20.19.43'],
    app,
  );
  for (const t of tarballs) {
    check(`${t.name}: import (ESM)`, () =>
      run(process.execPath, ['--input-type=module', '-e', `import * as m from '${t.name}'; if (Object.keys(m).length === 0) throw new Error('no exports');`], app),
    );
    check(`${t.name}: require (CommonJS)`, () => run(process.execPath, ['-e', `const m = require('${t.name}'); if (Object.keys(m).length === 0) throw new Error('no exports');`], app));
  }
  writeFileSync(join(app, 'check.ts'), tarballs.map((t, i) => `import * as m${i} from '${t.name}';\nexport const x${i}: object = m${i};\n`).join(''));
  writeFileSync(
    join(app, 'tsconfig.json'),
    JSON.stringify({ compilerOptions: { module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', strict: true, noEmit: true, skipLibCheck: false, types: ['node'] }, files: ['check.ts'] }),
  );
  check('types: every package typechecks from a consumer (nodenext)', () => run(join(app, 'node_modules/.bin/tsc'), ['-p', '.'], app));
} finally {
  rmSync(work, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
