#!/usr/bin/env node
// Generates libs/cri-image-service/src/gen from its .proto with buf + ts-proto.
// `--check` generates into a temporary folder and fails when the committed files differ
// (npm test runs it, so stale generated code cannot land).
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';

const root = join(import.meta.dirname, '..');
const lib = join(root, 'libs/cri-image-service');
const check = process.argv.includes('--check');
const HEADER = '// Generated from proto/runtime/v1/api.proto by `nx run cri-image-service:generate` (buf + ts-proto). Do not edit.\n';

const work = mkdtempSync(join(tmpdir(), 'rp-gen-'));
try {
  cpSync(join(lib, 'proto'), join(work, 'proto'), { recursive: true });
  cpSync(join(lib, 'buf.yaml'), join(work, 'buf.yaml'));
  writeFileSync(
    join(work, 'buf.gen.yaml'),
    readFileSync(join(lib, 'buf.gen.yaml'), 'utf8').replace('../../node_modules/.bin/protoc-gen-ts_proto', join(root, 'node_modules/.bin/protoc-gen-ts_proto')),
  );
  execFileSync(join(root, 'node_modules/.bin/buf'), ['generate'], { cwd: work, stdio: 'inherit' });
  const files = (d) => readdirSync(d).flatMap((f) => (statSync(join(d, f)).isDirectory() ? files(join(d, f)) : [join(d, f)]));
  const fresh = new Map(files(join(work, 'src/gen')).map((f) => [relative(join(work, 'src/gen'), f), HEADER + readFileSync(f, 'utf8')]));
  const target = join(lib, 'src/gen');
  if (check) {
    let existing = new Map();
    try {
      existing = new Map(files(target).map((f) => [relative(target, f), readFileSync(f, 'utf8')]));
    } catch {}
    const stale = [...new Set([...fresh.keys(), ...existing.keys()])].filter((k) => fresh.get(k) !== existing.get(k));
    if (stale.length > 0) {
      console.error(`generated CRI code is stale: ${stale.join(', ')}; run \`npx nx run cri-image-service:generate\` and commit`);
      process.exit(1);
    }
    console.log(`generated CRI code is up to date (${fresh.size} files)`);
  } else {
    rmSync(target, { recursive: true, force: true });
    for (const [name, text] of fresh) {
      const out = join(target, name);
      execFileSync('mkdir', ['-p', join(out, '..')]);
      writeFileSync(out, text);
    }
    console.log(`wrote ${fresh.size} files to ${relative(root, target)}`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
