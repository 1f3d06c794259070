#!/usr/bin/env node
// Replays each app's Dockerfile without Docker (no base image can be pulled on these machines):
// the build stage's RUN line runs in a clean copy of the repository, with /out in a temporary
// folder; then the app starts from that folder with plain node, as the runtime stage would run
// it, and answers a harmless command. Catches missing files, nested node_modules, and the like.
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..');
const work = mkdtempSync(join(tmpdir(), 'rp-images-'));
const env = { ...process.env, NX_NO_CLOUD: 'true', NX_DAEMON: 'false', NX_TUI: 'false' };
const apps = {
  proxy: { args: ['--check-config'], expect: /configuration OK/ },
  'kubelet-image-service': { args: ['--config', '/nonexistent.yaml'], expect: /cannot read configuration file/, code: 2 },
  'node-patcher': { args: ['status', '--root', '/nonexistent'], expect: /not patched/ },
};
let failed = 0;
try {
  const src = join(work, 'repo');
  execFileSync('sh', ['-c', `git -C '${root}' archive HEAD | (mkdir -p '${src}' && tar -x -C '${src}')`]);
  execFileSync('npm', ['ci', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: src, stdio: 'ignore', env });
  for (const [app, check] of Object.entries(apps)) {
    const dockerfile = readFileSync(join(root, 'apps', app, 'Dockerfile'), 'utf8');
    // The RUN line with its continuation lines (each ending in a backslash).
    const run = /^RUN ((?:[^\n]*\\\n)*[^\n]*)$/m
      .exec(dockerfile)?.[1]
      .replace(/\\\n/g, ' ')
      .replace(/^npm ci --ignore-scripts && /, '');
    const tree = join(work, app);
    cpSync(src, tree, { recursive: true, verbatimSymlinks: true });
    const out = join(work, `${app}-out`);
    const r = spawnSync('sh', ['-c', run.replace(/ \/out\b/g, ` ${out}`)], { cwd: tree, env, encoding: 'utf8' });
    if (r.status !== 0) {
      failed++;
      console.log(`FAIL ${app}: the build stage failed\n${r.stdout.slice(-2000)}${r.stderr.slice(-2000)}`);
      continue;
    }
    const entry = /ENTRYPOINT \["node", "\/app\/(.+)"\]/.exec(dockerfile)?.[1];
    const started = spawnSync(process.execPath, [join(out, entry), ...check.args], { cwd: '/', encoding: 'utf8', env: { PATH: process.env.PATH } });
    const ok = started.status === (check.code ?? 0) && check.expect.test(started.stdout + started.stderr);
    console.log(`${ok ? 'ok  ' : 'FAIL'} ${app}: runs from its image layout (${entry})`);
    if (!ok) {
      failed++;
      console.log(`${started.stdout}${started.stderr}`.slice(0, 2000));
    }
    if (app === 'node-patcher') {
      const plugin = join(out, 'registry-proxy-credential-provider');
      const okPlugin = existsSync(plugin) && spawnSync(plugin, ['--config', '/nonexistent'], { input: '{}', encoding: 'utf8', env: {} }).status === 1;
      console.log(`${okPlugin ? 'ok  ' : 'FAIL'} node-patcher: carries the single-file credential provider, which runs without Node.js on PATH`);
      if (!okPlugin) failed++;
    }
    rmSync(tree, { recursive: true, force: true });
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
