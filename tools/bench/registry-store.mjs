#!/usr/bin/env node
// Hits from the `registry` cache store, this build against another in the same run: two proxies,
// each on its own repository of one docker-registry store, in front of one docker-registry
// upstream; a blob filled once through each, then pulled from the store RUNS times by each,
// interleaved (same load for both). Prints, per build, the median proxy CPU seconds per GiB
// (utime+stime from /proc) and MiB/s, and the GETs the store logged for the blob.
//
//   node tools/bench/registry-store.mjs [baseline main.js]   (BENCH_MIB=256, BENCH_RUNS=3)
//
// With BENCH_COLD=N it measures cold pulls instead: N blobs of BENCH_COLD_KIB (1024) KiB, each
// pulled once through each build (interleaved, the order alternating), with a quota of
// BENCH_QUOTA_BLOBS blobs (0: 64 GiB, no eviction); prints per build the median wall time of a
// cold pull, the proxy CPU seconds for all of them, and the store requests per cold pull.
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = join(import.meta.dirname, '../..');
const MIB = Number(process.env.BENCH_MIB ?? 256);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const COLD = Number(process.env.BENCH_COLD ?? 0);
const COLD_KIB = Number(process.env.BENCH_COLD_KIB ?? 1024);
const QUOTA_BLOBS = Number(process.env.BENCH_QUOTA_BLOBS ?? 0);
const builds = { 'this build': join(root, 'apps/proxy/dist/main.js'), ...(process.argv[2] ? { baseline: process.argv[2] } : {}) };
const dir = mkdtempSync(join(tmpdir(), 'rp-bench-rstore-'));
const children = [];
const port = () =>
  new Promise((r) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => r(p));
    });
  });
const start = (cmd, args) => {
  const c = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'ignore'] });
  children.push(c);
  return c;
};
const wait = async (url, ok) => {
  for (let i = 0; i < 200; i++) {
    try {
      if (ok((await fetch(url)).status)) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${url} did not come up`);
};
const cpu = (pid) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
};
async function registry(name) {
  const p = await port();
  const d = join(dir, name);
  writeFileSync(
    `${d}.yml`,
    `version: 0.1\nlog: {level: info, accesslog: {disabled: false}}\nstorage: {filesystem: {rootdirectory: ${d}}, delete: {enabled: true}}\nhttp: {addr: 127.0.0.1:${p}, secret: bench}\n`,
  );
  const c = spawn('docker-registry', ['serve', `${d}.yml`], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(c);
  // The access log (stdout) names every request.
  const lines = [];
  for (const s of [c.stdout, c.stderr]) s.on('data', (b) => lines.push(...b.toString().split('\n')));
  await wait(`http://127.0.0.1:${p}/v2/`, (s) => s === 200);
  return { url: `http://127.0.0.1:${p}`, lines };
}

try {
  const up = await registry('upstream');
  const store = await registry('store');
  const data = randomBytes(COLD > 0 ? 16 : MIB << 20);
  const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
  const loc = (await fetch(`${up.url}/v2/bench/big/blobs/uploads/`, { method: 'POST' })).headers.get('location');
  const put = new URL(loc, up.url);
  put.searchParams.set('digest', digest);
  if ((await fetch(put, { method: 'PUT', body: data })).status !== 201) throw new Error('push failed');
  const hash = execFileSync('htpasswd', ['-nbB', 'bench', 'bench-pw']).toString().trim().split(':')[1];
  const proxies = {};
  let i = 0;
  for (const [name, main] of Object.entries(builds)) {
    const p = await port();
    const cfg = join(dir, `proxy${i}.yaml`);
    writeFileSync(
      cfg,
      `listen: {host: 127.0.0.1, port: ${p}}\nlog: {level: warn}\nauth: [{type: static, users: [{username: bench, passwordHash: "${hash}"}]}]\nrules: [{account: bench, repository: "**", actions: [pull]}]\nupstreams: [{name: local, url: "${up.url}", cache: {store: {type: registry, url: "${store.url}", repository: "cache/b${i}", spoolDir: "${join(dir, `spool${i}`)}"}, maxBytes: ${QUOTA_BLOBS > 0 ? QUOTA_BLOBS * COLD_KIB * 1024 + 512 : '64GiB'}}}]\n`,
    );
    const child = start(process.execPath, [main, '--config', cfg]);
    const url = `http://127.0.0.1:${p}`;
    await wait(`${url}/healthz`, (s) => s === 200);
    const t = await (
      await fetch(`${url}/token?service=registry-proxy&scope=repository:bench/big:pull`, { headers: { authorization: `Basic ${Buffer.from('bench:bench-pw').toString('base64')}` } })
    ).json();
    proxies[name] = { url, pid: child.pid, token: t.token, runs: [], repo: `cache/b${i}` };
    i++;
  }
  if (COLD > 0) {
    const blobs = [];
    for (let j = 0; j < COLD; j++) {
      const b = randomBytes(COLD_KIB << 10);
      const d = `sha256:${createHash('sha256').update(b).digest('hex')}`;
      const l = (await fetch(`${up.url}/v2/bench/big/blobs/uploads/`, { method: 'POST' })).headers.get('location');
      const u = new URL(l, up.url);
      u.searchParams.set('digest', d);
      if ((await fetch(u, { method: 'PUT', body: b })).status !== 201) throw new Error('push failed');
      blobs.push(d);
    }
    const names = Object.keys(proxies);
    for (const px of Object.values(proxies)) Object.assign(px, { times: [], cpu0: cpu(px.pid), mark: store.lines.length });
    const mark = store.lines.length;
    for (const [j, d] of blobs.entries()) {
      for (const name of j % 2 ? [...names].reverse() : names) {
        const px = proxies[name];
        const t0 = process.hrtime.bigint();
        const r = await fetch(`${px.url}/v2/bench/big/blobs/${d}`, { headers: { authorization: `Bearer ${px.token}` } });
        const h = createHash('sha256');
        for await (const c of r.body) h.update(c);
        if (`sha256:${h.digest('hex')}` !== d) throw new Error('wrong bytes');
        px.times.push(Number(process.hrtime.bigint() - t0) / 1e6);
      }
    }
    // Uploads (and evictions) finish before a fill's last byte is released: nothing is left in flight.
    const med = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    console.log(`${COLD} cold pulls of ${COLD_KIB} KiB through a docker-registry store, quota ${QUOTA_BLOBS > 0 ? `${QUOTA_BLOBS} blobs` : '64 GiB'}, interleaved`);
    for (const [name, px] of Object.entries(proxies)) {
      const reqs = store.lines.slice(mark).filter((l) => l.includes(`/v2/${px.repo}/`) && /"(GET|HEAD|PUT|POST|DELETE|PATCH) /.test(l)).length;
      console.log(`  ${name.padEnd(12)} median ${med(px.times).toFixed(1).padStart(6)} ms  CPU ${(cpu(px.pid) - px.cpu0).toFixed(2)} s  store requests per pull: ${(reqs / COLD).toFixed(1)}`);
    }
  } else await hits(proxies, store, digest);
} finally {
  for (const c of children) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
}

async function hits(proxies, store, digest) {
  const pull = async (px) => {
    const c0 = cpu(px.pid);
    const t0 = process.hrtime.bigint();
    const r = await fetch(`${px.url}/v2/bench/big/blobs/${digest}`, { headers: { authorization: `Bearer ${px.token}` } });
    const h = createHash('sha256');
    for await (const c of r.body) h.update(c);
    if (`sha256:${h.digest('hex')}` !== digest) throw new Error('wrong bytes');
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    return { cpuPerGiB: (cpu(px.pid) - c0) / (MIB / 1024), mibs: MIB / s };
  };
  for (const px of Object.values(proxies)) await pull(px); // the fill
  for (const px of Object.values(proxies)) await pull(px); // first hit: hashed once, then trusted
  const mark = store.lines.length;
  for (let r = 0; r < RUNS; r++) for (const px of Object.values(proxies)) px.runs.push(await pull(px));
  const med = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  console.log(`${MIB} MiB blob, hits from a docker-registry store, ${RUNS} runs each, interleaved`);
  for (const [name, px] of Object.entries(proxies)) {
    const gets = store.lines.slice(mark).filter((l) => l.includes(`GET /v2/${px.repo}/blobs/${digest}`)).length;
    console.log(
      `  ${name.padEnd(12)} ${med(px.runs.map((x) => x.cpuPerGiB))
        .toFixed(2)
        .padStart(6)} CPU-s/GiB  ${med(px.runs.map((x) => x.mibs))
        .toFixed(0)
        .padStart(5)} MiB/s  store GETs per pull: ${(gets / RUNS).toFixed(0)}`,
    );
  }
}
