#!/usr/bin/env node
// Instructions per uncoalesced manifest HEAD, for an A/B of builds that req/s and CPU time on a
// shared machine cannot resolve: each build's proxy runs under callgrind with one upstream that has
// `coalesce: false`, answers a warm-up, has its counters zeroed, answers N HEADs of one manifest
// (a Bearer token from its own /token, 50 keep-alive clients in a closed loop), and has them
// dumped; instructions / N is the proxy's cost of one relayed HEAD (the /v2 path and the upstream
// wire; start-up, warm-up and the JIT's first compiles are not counted).
//
// The upstream is a real docker-registry (as tools/bench/run.mjs starts it), not a node:http
// stand-in: it runs untraced in its own process either way, and the real one answers with the
// headers a registry sends (docker-content-digest, etag, x-content-type-options, ...), which
// the proxy's header relaying has to walk. Same proxy configuration as run.mjs's `coalesce: false`
// proxy, log level warn.
//
//   node tools/bench/head-instructions.mjs [main.js ...]   (default: this tree's build)
//
// Each build is measured TI_PASSES times in a row. Two counts per pass: the main thread's (the
// event loop, where every request runs: the A/B figure) and all threads' (with V8's background
// compiles and concurrent marking, which swing by a third from pass to pass even after 8,000
// warm-up HEADs, and can only be read as a median). The main thread's count still varies by
// about 10% between passes and runs: differences below about 20,000 instructions per HEAD are
// not resolved. Builds are measured one after the other against the same registry.
// Env: TI_N (2000 HEADs per pass), TI_PASSES (3), TI_WARMUP (8000), TI_CLIENTS (50).
// Needs valgrind (callgrind_control), docker-registry and htpasswd. Loopback only. Prints numbers,
// asserts every answer is a 200 with the manifest's digest.
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, openSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, imageEnv, root } from './common.mjs';

const builds = process.argv.length > 2 ? process.argv.slice(2).map((p) => resolve(p)) : [join(root, 'apps/proxy/dist/main.js')];
const N = Number(process.env.TI_N ?? 2000);
const WARMUP = Number(process.env.TI_WARMUP ?? 8000);
const CLIENTS = Number(process.env.TI_CLIENTS ?? 50);
const PASSES = Number(process.env.TI_PASSES ?? 3);
const dir = mkdtempSync(join(tmpdir(), 'rp-headinstr-'));
const children = [];

const waitHttp = async (url, ok, child) => {
  for (let i = 0; ; i++) {
    try {
      if (ok((await fetch(url)).status)) return;
    } catch {}
    if (i > 1200 || (child && child.exitCode !== null)) throw new Error(`not up: ${url} (logs in ${dir})`);
    await sleep(250);
  }
};
const stop = async (c) => {
  c.kill('SIGTERM');
  await new Promise((r) => (c.exitCode === null ? c.once('exit', r) : r()));
};

/** `n` HEADs from CLIENTS keep-alive connections in a closed loop; every answer must be a 200 with the digest. */
const load = async (port, n, token, digest) => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: CLIENTS });
  const headers = { authorization: `Bearer ${token}`, accept: 'application/vnd.oci.image.manifest.v1+json' };
  let left = n;
  const one = () =>
    new Promise((ok, fail) => {
      const r = http.request({ host: '127.0.0.1', port, agent, method: 'HEAD', path: '/v2/bench/app/manifests/v1', headers }, (res) => {
        res.resume();
        res.on('end', () => (res.statusCode === 200 && res.headers['docker-content-digest'] === digest ? ok() : fail(new Error(`HEAD: ${res.statusCode} ${JSON.stringify(res.headers)}`))));
      });
      r.on('error', fail);
      r.end();
    });
  const worker = async () => {
    while (left-- > 0) await one();
  };
  await Promise.all(Array.from({ length: Math.min(CLIENTS, n) }, worker));
  agent.destroy();
};

const results = [];
try {
  // --- the registry, no auth, with one manifest
  const regPort = await freePort();
  writeFileSync(join(dir, 'registry.yml'), `version: 0.1\nlog: {level: error}\nstorage: {filesystem: {rootdirectory: ${dir}/data}}\nhttp: {addr: 127.0.0.1:${regPort}}\n`);
  const regLog = openSync(join(dir, 'registry.log'), 'a');
  const registry = spawn('docker-registry', ['serve', join(dir, 'registry.yml')], { stdio: ['ignore', regLog, regLog] });
  children.push(registry);
  const reg = `http://127.0.0.1:${regPort}`;
  await waitHttp(`${reg}/v2/`, (s) => s === 200, registry);
  const config = Buffer.from('{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}');
  const cdigest = `sha256:${createHash('sha256').update(config).digest('hex')}`;
  const up = await fetch(`${reg}/v2/bench/app/blobs/uploads/`, { method: 'POST' });
  const loc = new URL(up.headers.get('location'), reg);
  loc.searchParams.set('digest', cdigest);
  if ((await fetch(loc, { method: 'PUT', body: config })).status !== 201) throw new Error('config blob upload failed');
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: cdigest, size: config.length },
    layers: [],
  });
  const digest = `sha256:${createHash('sha256').update(manifest).digest('hex')}`;
  if ((await fetch(`${reg}/v2/bench/app/manifests/v1`, { method: 'PUT', headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }, body: manifest })).status !== 201)
    throw new Error('manifest upload failed');

  const hash = execFileSync('htpasswd', ['-nbB', 'bench', 'bench-pw']).toString().trim().split(':')[1];
  const basic = `Basic ${Buffer.from('bench:bench-pw').toString('base64')}`;
  for (const [b, main] of builds.entries()) {
    const port = await freePort();
    writeFileSync(
      join(dir, `proxy-${b}.yaml`),
      `listen: {host: 127.0.0.1, port: ${port}}
log: {level: warn}
auth: [{type: static, users: [{username: bench, passwordHash: "${hash}"}]}]
rules: [{account: bench, repository: "**", actions: [pull, push]}]
upstreams: [{name: local, url: "${reg}", coalesce: false}]
`,
    );
    const out = join(dir, `cg-${b}`);
    const log = openSync(join(dir, `proxy-${b}.log`), 'a');
    const vg = spawn('valgrind', ['--tool=callgrind', '--separate-threads=yes', `--callgrind-out-file=${out}`, process.execPath, main, '--config', join(dir, `proxy-${b}.yaml`)], {
      stdio: ['ignore', log, log],
      env: { ...process.env, ...imageEnv },
    });
    try {
      await waitHttp(`http://127.0.0.1:${port}/healthz`, (s) => s === 200, vg);
      // Tokens live 5 minutes; a pass under callgrind takes well under that, but each gets its own.
      const token = async () => {
        const r = await fetch(`http://127.0.0.1:${port}/token?service=registry-proxy&scope=repository%3Abench%2Fapp%3Apull`, { headers: { authorization: basic } });
        const t = (await r.json()).token;
        if (!t) throw new Error(`/token: ${r.status}`);
        return t;
      };
      await load(port, WARMUP, await token(), digest);
      const passes = [];
      for (let pass = 0; pass < PASSES; pass++) {
        const t = await token();
        execFileSync('callgrind_control', ['--zero', String(vg.pid)], { stdio: 'ignore' });
        await load(port, N, t, digest);
        const before = new Set(readdirSync(dir));
        execFileSync('callgrind_control', ['--dump', String(vg.pid)], { stdio: 'ignore' });
        // One file per thread: -01 is the main thread (the event loop, where the requests run).
        const dumps = readdirSync(dir).filter((f) => f.startsWith(`cg-${b}.`) && !before.has(f));
        if (!dumps.some((f) => f.endsWith('-01'))) throw new Error('callgrind wrote no dump');
        const count = (f) => Number(/^(?:summary|totals): (\d+)/m.exec(readFileSync(join(dir, f), 'utf8'))?.[1] ?? 0);
        const all = dumps.reduce((sum, f) => sum + count(f), 0);
        passes.push({ main: count(dumps.find((f) => f.endsWith('-01'))) / N, all: all / N });
      }
      results.push({ build: main, passes });
    } finally {
      await stop(vg);
    }
  }
} finally {
  for (const c of children) await stop(c);
}
const fmt = (xs) => xs.map((x) => Math.round(x).toLocaleString('en').padStart(9)).join(' ');
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log(`\ninstructions per HEAD (callgrind, proxy process only; coalesce: false; ${PASSES} passes of ${N} HEADs after ${WARMUP} warm-up, ${CLIENTS} clients; ${new Date().toISOString()})`);
console.log('  main thread: passes, median | all threads: passes, median');
for (const r of results) {
  const m = r.passes.map((p) => p.main);
  const a = r.passes.map((p) => p.all);
  console.log(`  ${fmt(m)} | ${fmt([median(m)])} || ${fmt(a)} | ${fmt([median(a)])}  ${r.build}`);
}
if (!process.env.TI_KEEP) execFileSync('rm', ['-rf', dir]);
else console.log(`  dumps kept in ${dir}`);
