#!/usr/bin/env node
// Token endpoint benchmark: tokens per second the proxy issues to 50 concurrent clients, with
// p50/p99 latency and the proxy's CPU per token, for
//   - a cached identity: one htpasswd user logging in again and again, as every `docker pull`
//     and every containerd fetch does (GET /token with Basic credentials and a pull scope, and
//     the POST form containerd sends: grant_type=password, client_id, one space-separated scope);
//   - refresh grants (POST grant_type=refresh_token), as docker sends after `docker login`.
// Same-run baselines on the same load: nginx answering a static 200, and the proxy's /healthz
// (Express, the request log line, no auth), so numbers from a noisy machine compare within a run.
// Prints numbers; asserts nothing but that every answer is a 200. Loopback only. Needs a build.
// Env: BENCH_SECONDS (5, per measured pass, after a 1 s warm-up), BENCH_RUNS (2, each pass is
// printed), BENCH_CLIENTS (50), BENCH_BCRYPT_COST (htpasswd -B's default, 5), BENCH_LOG_LEVEL
// (info, the default: the audit line is written, to a file), BENCH_NODE_ARGS, BENCH_KEEP,
// BENCH_ONLY (runs when unset or when it names `tokens`), BENCH_SCENARIOS (names to run, e.g.
// `refresh,healthz`), BENCH_BASELINE (another build's apps/proxy/dist/main.js, measured beside this one).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import http from 'node:http';
import { children, cpu, freePort, imageEnv, root, waitHttp } from './common.mjs';

if (process.env.BENCH_ONLY && !process.env.BENCH_ONLY.split(',').includes('tokens')) process.exit(0);

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const RUNS = Number(process.env.BENCH_RUNS ?? 2);
const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 50);
const COST = process.env.BENCH_BCRYPT_COST;
const LOG_LEVEL = process.env.BENCH_LOG_LEVEL ?? 'info';
const dir = mkdtempSync(join(tmpdir(), 'rp-tokbench-'));
const proxyEnv = process.env.BENCH_PROXY_ENV === 'none' ? process.env : { ...process.env, ...imageEnv };

const { start, stop: cleanup } = children(dir);
const port = freePort;
const ready = (url) => waitHttp(url, (s) => s === 200);

/**
 * CLIENTS keep-alive connections in a closed loop for `seconds`: each sends its next request
 * when the last is answered. `req()` gives { method, path, headers, body }. Returns requests/s,
 * latency p50/p99 and, with `pid`, that process's CPU per request.
 */
const load = async (base, req, pid, seconds) => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: CLIENTS });
  const { hostname, port: p } = new URL(base);
  const one = () =>
    new Promise((resolve, reject) => {
      const { method, path, headers, body } = req();
      const t0 = process.hrtime.bigint();
      const r = http.request({ hostname, port: p, agent, method, path, headers: body ? { ...headers, 'content-length': Buffer.byteLength(body) } : headers }, (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          if (res.statusCode !== 200) return reject(new Error(`${method} ${path}: ${res.statusCode} ${Buffer.concat(chunks).toString().slice(0, 200)}`));
          resolve({ ms: Number(process.hrtime.bigint() - t0) / 1e6, body: chunks });
        });
      });
      r.on('error', reject);
      r.end(body);
    });
  const pass = async (secs) => {
    const lat = [];
    let sample;
    const until = performance.now() + secs * 1000;
    const worker = async () => {
      while (performance.now() < until) {
        const { ms, body } = await one();
        lat.push(ms);
        sample ??= body;
      }
    };
    const t0 = performance.now();
    const c0 = pid ? cpu(pid) : 0;
    await Promise.all(Array.from({ length: CLIENTS }, worker));
    const elapsed = (performance.now() - t0) / 1000;
    const used = pid ? cpu(pid) - c0 : NaN;
    lat.sort((a, b) => a - b);
    return {
      n: lat.length,
      rate: lat.length / elapsed,
      p50: lat[Math.floor(lat.length * 0.5)],
      p99: lat[Math.floor(lat.length * 0.99)],
      cpuUs: (used * 1e6) / lat.length,
      sample: Buffer.concat(sample).toString(),
    };
  };
  await pass(1); // warm-up: connections, JIT, caches
  const r = await pass(seconds);
  agent.destroy();
  return r;
};

try {
  // --- nginx answering a static 200: the floor of an HTTP answer on this machine
  const ngPort = await port();
  writeFileSync(
    join(dir, 'nginx.conf'),
    `worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/nginx-body; proxy_temp_path ${dir}/nginx-proxy;
  fastcgi_temp_path ${dir}/nginx-fcgi; uwsgi_temp_path ${dir}/nginx-uwsgi; scgi_temp_path ${dir}/nginx-scgi;
  server {
    listen 127.0.0.1:${ngPort};
    location / { default_type text/plain; return 200 "ok"; }
  }
}
`,
  );
  start('nginx', ['-c', join(dir, 'nginx.conf'), '-g', 'daemon off;'], 'nginx.log');
  const ng = `http://127.0.0.1:${ngPort}`;
  await ready(`${ng}/`);
  const ngMaster = Number(readFileSync(join(dir, 'nginx.pid'), 'utf8'));
  const ngWorker = Number(
    execFileSync('pgrep', ['-P', String(ngMaster)])
      .toString()
      .trim()
      .split('\n')[0],
  );

  // --- the proxy, with one htpasswd user. The token endpoint's default rate limits (300 burst,
  // 30/s per client address and per account) would answer most of this one-address load with
  // 429, so they are raised out of the way here: this measures the cost of a token, not a limit.
  // The failures limiter too: builds before 2026-12-03's FailureGate took a point per password
  // grant in flight and refused the 11th right password at once from one address with 429, and
  // BENCH_BASELINE may name such a build.
  writeFileSync(join(dir, 'htpasswd'), execFileSync('htpasswd', ['-nbB', ...(COST ? ['-C', COST] : []), 'bench', 'bench-pw']));
  const bcryptCost = /^bench:\$2.\$(\d+)\$/.exec(readFileSync(join(dir, 'htpasswd'), 'utf8'))?.[1];
  const pxPort = await port();
  const limits = '{perClient: {burst: 1000000000, perSecond: 1000000000}, perAccount: {burst: 1000000000, perSecond: 1000000000}, failures: {points: 1000000000, durationSeconds: 1}}';
  writeFileSync(
    join(dir, 'proxy.yaml'),
    `listen: {host: 127.0.0.1, port: ${pxPort}}
log: {level: ${LOG_LEVEL}}
service: registry-proxy
auth: [{type: static, htpasswd: ${join(dir, 'htpasswd')}}]
rules: [{account: bench, repository: "**", actions: [pull, push]}]
rateLimits: ${limits}
upstreams: [{name: local, url: "http://127.0.0.1:9"}]
`,
  );
  const nodeArgs = process.env.BENCH_NODE_ARGS ? process.env.BENCH_NODE_ARGS.split(' ') : [];
  const proxy = start(process.execPath, [...nodeArgs, join(root, 'apps/proxy/dist/main.js'), '--config', join(dir, 'proxy.yaml')], 'proxy.log', proxyEnv);
  const px = `http://127.0.0.1:${pxPort}`;
  await ready(`${px}/healthz`);
  // BENCH_BASELINE=<another build's apps/proxy/dist/main.js>: that build, same configuration,
  // measured right after this one in each pass (an A/B under the same load).
  let baseline;
  if (process.env.BENCH_BASELINE) {
    const bPort = await port();
    writeFileSync(join(dir, 'baseline.yaml'), readFileSync(join(dir, 'proxy.yaml'), 'utf8').replace(`port: ${pxPort}`, `port: ${bPort}`));
    const proc = start(process.execPath, [...nodeArgs, process.env.BENCH_BASELINE, '--config', join(dir, 'baseline.yaml')], 'baseline.log', proxyEnv);
    baseline = { url: `http://127.0.0.1:${bPort}`, pid: proc.pid };
    await ready(`${baseline.url}/healthz`);
  }

  const basic = `Basic ${Buffer.from('bench:bench-pw').toString('base64')}`;
  const form = 'application/x-www-form-urlencoded';
  // What `docker login` leaves behind: a refresh token from a password grant with access_type=offline.
  const login = await fetch(`${px}/token`, {
    method: 'POST',
    headers: { 'content-type': form },
    body: new URLSearchParams({ grant_type: 'password', username: 'bench', password: 'bench-pw', service: 'registry-proxy', client_id: 'docker', access_type: 'offline' }),
  });
  const refreshToken = (await login.json()).refresh_token;
  if (!refreshToken) throw new Error(`no refresh token: ${login.status}`);

  const scenarios = [
    ['nginx, static 200 (baseline)', ng, () => ({ method: 'GET', path: '/', headers: {} }), ngWorker],
    ['proxy, GET /healthz (baseline)', px, () => ({ method: 'GET', path: '/healthz', headers: {} }), proxy.pid],
    ['GET /token, Basic, pull scope', px, () => ({ method: 'GET', path: '/token?service=registry-proxy&scope=repository%3Abench%2Fapp%3Apull', headers: { authorization: basic } }), proxy.pid],
    [
      'POST /token, password (containerd)',
      px,
      () => ({
        method: 'POST',
        path: '/token',
        headers: { 'content-type': form },
        body: 'scope=repository%3Abench%2Fapp%3Apull&service=registry-proxy&client_id=containerd-client&grant_type=password&username=bench&password=bench-pw',
      }),
      proxy.pid,
    ],
    [
      'POST /token, refresh_token grant',
      px,
      () => ({
        method: 'POST',
        path: '/token',
        headers: { 'content-type': form },
        body: `scope=repository%3Abench%2Fapp%3Apull&service=registry-proxy&client_id=docker&grant_type=refresh_token&refresh_token=${refreshToken}`,
      }),
      proxy.pid,
    ],
  ];
  if (baseline) {
    for (const [name, base, req, pid] of [...scenarios]) {
      if (base !== px) continue;
      // The refresh token is the other build's to verify: it signs with its own key.
      const make = name.includes('refresh')
        ? await (async () => {
            const l = await fetch(`${baseline.url}/token`, {
              method: 'POST',
              headers: { 'content-type': form },
              body: new URLSearchParams({ grant_type: 'password', username: 'bench', password: 'bench-pw', service: 'registry-proxy', client_id: 'docker', access_type: 'offline' }),
            });
            const rt = (await l.json()).refresh_token;
            return () => ({ ...req(), body: req().body.replace(refreshToken, rt) });
          })()
        : req;
      scenarios.splice(scenarios.findIndex((x) => x[0] === name) + 1, 0, [`baseline: ${name}`, baseline.url, make, baseline.pid]);
      void pid;
    }
  }
  // BENCH_SCENARIOS=refresh,healthz: only the scenarios whose names contain one of these (to profile one path).
  const pick = process.env.BENCH_SCENARIOS?.split(',');
  const chosen = pick ? scenarios.filter(([name]) => pick.some((w) => name.includes(w))) : scenarios;
  const results = [];
  for (let run = 1; run <= RUNS; run++) {
    for (const [name, base, req, pid] of chosen) {
      const r = await load(base, req, pid, SECONDS);
      if (base !== ng && name.includes('/token') && !JSON.parse(r.sample).token) throw new Error(`${name}: no token in ${r.sample.slice(0, 200)}`);
      results.push({ run, name, ...r });
    }
  }

  const f = (n, d = 0) => (Number.isNaN(n) ? '-' : n.toFixed(d)).padStart(9);
  console.log(`\nregistry-proxy token endpoint benchmark (${CLIENTS} clients in a closed loop, ${SECONDS} s per pass after 1 s warm-up; ${new Date().toISOString()})`);
  console.log(
    `  proxy environment: ${
      process.env.BENCH_PROXY_ENV === 'none'
        ? 'bare node (BENCH_PROXY_ENV=none)'
        : Object.entries(imageEnv)
            .map(([k, v]) => `${k}=${v}`)
            .join(' ')
    }; log level ${LOG_LEVEL} (to a file)`,
  );
  console.log(`  htpasswd user with bcrypt cost ${bcryptCost}; rateLimits raised to ${limits} so one address is not throttled`);
  console.log(`  (the load generator runs in this Node process on the same ${(await import('node:os')).availableParallelism()} cores)\n`);
  // req/CPU-s: answers per second of CPU the answering process used (1e6 / CPU us/req). Unlike
  // req/s it hardly moves when other processes compete for the cores, so a loaded machine can
  // still compare; req/s is what the target is stated in and needs a quiet machine.
  console.log(`  run  ${'scenario'.padEnd(46)} ${'req/s'.padStart(9)} ${'p50 ms'.padStart(9)} ${'p99 ms'.padStart(9)} ${'CPU us/req'.padStart(11)} ${'req/CPU-s'.padStart(10)}`);
  for (const r of results) console.log(`  ${String(r.run).padStart(3)}  ${r.name.padEnd(46)} ${f(r.rate)} ${f(r.p50, 2)} ${f(r.p99, 2)} ${f(r.cpuUs).padStart(11)} ${f(1e6 / r.cpuUs).padStart(10)}`);
  for (let run = 1; run <= RUNS; run++) {
    const of = (name) => results.find((r) => r.run === run && r.name.startsWith(name));
    const hz = of('proxy, GET /healthz');
    if (!hz) continue;
    const bhz = of('baseline: proxy, GET /healthz');
    const line = ['GET /token', 'POST /token, password', 'POST /token, refresh']
      .filter(of)
      .map((n) => `${n}: ${(of(n).cpuUs / hz.cpuUs).toFixed(1)}x /healthz CPU` + (bhz && of(`baseline: ${n}`) ? ` (baseline ${(of(`baseline: ${n}`).cpuUs / bhz.cpuUs).toFixed(1)}x)` : ''))
      .join('; ');
    console.log(`  run ${run}: ${line}`);
  }
  const loadAvg = (await import('node:os')).loadavg()[0];
  console.log(`  target: >= 5000 tokens/s on 2 cores; 1-minute load average at the end: ${loadAvg.toFixed(1)} (above the core count, req/s understates)`);
} finally {
  await cleanup();
  if (process.env.BENCH_KEEP) console.log(`kept ${dir}`);
  else execFileSync('rm', ['-rf', dir]);
}
