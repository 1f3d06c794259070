#!/usr/bin/env node
// Builds the kubelet credential provider as one executable file (a Node.js single executable
// application), so hosts without Node.js (GKE's COS, the EKS AMIs) can run it: esbuild bundles
// the built plugin and its dependencies into one CommonJS script, node makes a SEA blob of it,
// postject injects the blob into a copy of this node binary.
// Output: apps/kubelet-image-service/dist-bin/registry-proxy-credential-provider (Linux x64,
// glibc, like the node that builds it).
import { execFileSync } from 'node:child_process';
import { copyFileSync, chmodSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';

const root = join(import.meta.dirname, '..');
const out = join(root, 'apps/kubelet-image-service/dist-bin');
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const bundle = join(out, 'credential-provider.cjs');
await build({
  entryPoints: [join(root, 'apps/kubelet-image-service/dist/credential-provider.js')],
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  outfile: bundle,
  logLevel: 'warning',
  // The AWS SDK is large and only the ecr provider loads it (on first use): it stays out, and
  // that provider reports clearly that it is missing.
  external: ['@aws-sdk/client-ecr'],
});
writeFileSync(join(out, 'sea-config.json'), JSON.stringify({ main: bundle, output: join(out, 'sea.blob'), disableExperimentalSEAWarning: true }));
execFileSync(process.execPath, ['--experimental-sea-config', join(out, 'sea-config.json')], { stdio: 'ignore' });
const exe = join(out, 'registry-proxy-credential-provider');
copyFileSync(process.execPath, exe);
chmodSync(exe, 0o755);
execFileSync(join(root, 'node_modules/.bin/postject'), [exe, 'NODE_SEA_BLOB', join(out, 'sea.blob'), '--sentinel-fuse', 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2'], { stdio: 'ignore' });
for (const f of ['sea.blob', 'sea-config.json']) rmSync(join(out, f));
console.log(exe);
