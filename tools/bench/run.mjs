#!/usr/bin/env node
// Pull and push benchmark, side by side in one run against the same docker-registry:
//   1. a large blob pulled directly, through nginx (the baseline an operator would pick) and
//      through the proxy: MiB/s, and CPU seconds per GiB of the relaying process;
//   2. manifest HEAD latency p50/p99 at 50 concurrent clients, directly and through the proxy;
//   3. the proxy's peak RSS while 20 clients pull large blobs at once;
//   4. the same large blob pushed (one streamed PUT) directly, through nginx and the proxy;
//   5. an upstream behind a token realm: a request that needs a new upstream token vs one
//      that reuses the cached token;
//   6. the pull-through cache: a cached blob through the proxy vs directly vs through nginx; a
//      cold pull through the cache vs the uncached relay (CPU); 100 concurrent cold pulls of
//      one blob and the upstream requests they caused.
// Prints numbers; asserts nothing. Loopback only. Needs tools/install-deps.sh and a build.
// Env: BENCH_BLOB_MIB (512), BENCH_RUNS (3), BENCH_HEADS (20000), BENCH_PARALLEL (20),
// BENCH_ONLY (blob,head,rss,push,token,cache; `token` is the proxy's upstream tokens, `tokens` its
// own token endpoint, in tools/bench/tokens.mjs), BENCH_HERD_MIB (64), BENCH_HERD (100),
// BENCH_BASELINE (another build's apps/proxy/dist/main.js, measured beside this one in the HEAD and
// blob sections).
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import http from 'node:http';
import { children, cpu, cpuSplit, freePort, imageEnv, root, waitHttp } from './common.mjs';

const MIB = 1024 * 1024;
const BLOB_MIB = Number(process.env.BENCH_BLOB_MIB ?? 512);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const HEADS = Number(process.env.BENCH_HEADS ?? 20_000);
const PARALLEL = Number(process.env.BENCH_PARALLEL ?? 20);
const ONLY = new Set((process.env.BENCH_ONLY ?? 'blob,head,rss,push,token,cache').split(','));
const HERD_MIB = Number(process.env.BENCH_HERD_MIB ?? 64);
const HERD = Number(process.env.BENCH_HERD ?? 100);
// `tokens` (the token endpoint's own throughput) is tools/bench/tokens.mjs, which `npm run bench`
// runs next: with only that named, this file has nothing to do.
if (!['blob', 'head', 'rss', 'push', 'token', 'cache'].some((s) => ONLY.has(s))) process.exit(0);
const dir = mkdtempSync(join(tmpdir(), 'rp-bench-'));
// The proxy runs with the environment its image sets (apps/proxy/Dockerfile's ENV), unless
// BENCH_PROXY_ENV=none: then as a bare `node main.js`.
const proxyEnv = process.env.BENCH_PROXY_ENV === 'none' ? process.env : { ...process.env, ...imageEnv };

const { start, stop: cleanup } = children(dir);
const port = freePort;
const status = (pid, key) =>
  Number(
    /(\d+) kB/.exec(
      readFileSync(`/proc/${pid}/status`, 'utf8')
        .split('\n')
        .find((l) => l.startsWith(key)) ?? '',
    )?.[1] ?? 0,
  ) / 1024;

try {
  // --- the registry, no auth (nginx and direct clients reach it the same way the proxy does)
  const regPort = await port();
  writeFileSync(join(dir, 'registry.yml'), `version: 0.1\nlog: {level: error}\nstorage: {filesystem: {rootdirectory: ${dir}/data}}\nhttp: {addr: 127.0.0.1:${regPort}}\n`);
  start('docker-registry', ['serve', join(dir, 'registry.yml')], 'registry.log');
  const reg = `http://127.0.0.1:${regPort}`;
  await waitHttp(`${reg}/v2/`);

  // --- a large random blob, pushed with a streaming PUT
  const blobFile = join(dir, 'blob');
  const fd = openSync(blobFile, 'w');
  const hash = createHash('sha256');
  const chunk = randomBytes(4 * MIB);
  for (let i = 0; i < BLOB_MIB / 4; i++) {
    chunk.writeUInt32LE(i, 0);
    hash.update(chunk);
    writeSync(fd, chunk);
  }
  closeSync(fd);
  const digest = `sha256:${hash.digest('hex')}`;
  const up = await fetch(`${reg}/v2/bench/big/blobs/uploads/`, { method: 'POST' });
  const loc = new URL(up.headers.get('location'), reg);
  loc.searchParams.set('digest', digest);
  execFileSync('curl', ['-sf', '-X', 'PUT', '-H', 'Content-Type: application/octet-stream', '-T', blobFile, loc.href]);
  const config = Buffer.from('{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}');
  const cdigest = `sha256:${createHash('sha256').update(config).digest('hex')}`;
  const up2 = await fetch(`${reg}/v2/bench/big/blobs/uploads/`, { method: 'POST' });
  const loc2 = new URL(up2.headers.get('location'), reg);
  loc2.searchParams.set('digest', cdigest);
  await fetch(loc2, { method: 'PUT', body: config });
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: cdigest, size: config.length },
    layers: [],
  });
  await fetch(`${reg}/v2/bench/big/manifests/v1`, { method: 'PUT', headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }, body: manifest });

  // --- nginx, configured as an operator would put it in front of a registry
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
  upstream registry { server 127.0.0.1:${regPort}; keepalive 64; }
  server {
    listen 127.0.0.1:${ngPort};
    client_max_body_size 0;
    location / {
      proxy_request_buffering off;
      proxy_pass http://registry;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_buffering on;
      proxy_buffers 32 64k;
      proxy_max_temp_file_size 0;
    }
  }
}
`,
  );
  start('nginx', ['-c', join(dir, 'nginx.conf'), '-g', 'daemon off;'], 'nginx.log');
  await waitHttp(`http://127.0.0.1:${ngPort}/v2/`);
  const ngMaster = Number(readFileSync(join(dir, 'nginx.pid'), 'utf8'));
  const ngWorker = Number(
    execFileSync('pgrep', ['-P', String(ngMaster)])
      .toString()
      .trim()
      .split('\n')[0],
  );

  // --- a second registry with `auth: token`, and its token realm in this process (as Docker
  // Hub, GHCR and Quay work): for the upstream token timings
  const { SignJWT, importPKCS8 } = await import('jose');
  const { X509Certificate, randomUUID } = await import('node:crypto');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'realm.key', '-out', 'realm.crt', '-days', '2', '-subj', '/CN=bench realm'], {
    cwd: dir,
    stdio: 'ignore',
  });
  const realmKey = await importPKCS8(readFileSync(join(dir, 'realm.key'), 'utf8'), 'ES256');
  const x5c = [new X509Certificate(readFileSync(join(dir, 'realm.crt'))).raw.toString('base64')];
  const realmServer = http.createServer(async (req, res) => {
    const scopes = new URL(req.url, 'http://x').searchParams.getAll('scope');
    const access = scopes.map((sc) => ({ type: sc.split(':')[0], name: sc.split(':')[1], actions: (sc.split(':')[2] ?? '').split(',') }));
    const now = Math.floor(Date.now() / 1000);
    const token = await new SignJWT({ access })
      .setProtectedHeader({ alg: 'ES256', x5c })
      .setIssuer('bench-realm')
      .setAudience('bench-registry')
      .setSubject('bot')
      .setIssuedAt(now)
      .setNotBefore(now - 5)
      .setExpirationTime(now + 600)
      .setJti(randomUUID())
      .sign(realmKey);
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token, expires_in: 600 }));
  });
  await new Promise((r) => realmServer.listen(0, '127.0.0.1', r));
  const realmUrl = `http://127.0.0.1:${realmServer.address().port}`;
  const tregPort = await port();
  writeFileSync(
    join(dir, 'treg.yml'),
    `version: 0.1\nlog: {level: error}\nstorage: {filesystem: {rootdirectory: ${dir}/tdata}}\nhttp: {addr: 127.0.0.1:${tregPort}}\nauth: {token: {realm: "${realmUrl}/token", service: bench-registry, issuer: bench-realm, rootcertbundle: ${join(dir, 'realm.crt')}}}\n`,
  );
  start('docker-registry', ['serve', join(dir, 'treg.yml')], 'treg.log');
  const treg = `http://127.0.0.1:${tregPort}`;
  await waitHttp(`${treg}/v2/`, (st) => st === 401);
  const REPOS = 50;
  for (let i = 0; i < REPOS; i++) {
    const t = (await (await fetch(`${realmUrl}/token?scope=repository:bench/r${i}:pull,push`)).json()).token;
    const h = { authorization: `Bearer ${t}` };
    const u = await fetch(`${treg}/v2/bench/r${i}/blobs/uploads/`, { method: 'POST', headers: h });
    const l = new URL(u.headers.get('location'), treg);
    l.searchParams.set('digest', cdigest);
    await fetch(l, { method: 'PUT', body: config, headers: h });
    await fetch(`${treg}/v2/bench/r${i}/manifests/v1`, { method: 'PUT', headers: { ...h, 'content-type': 'application/vnd.oci.image.manifest.v1+json' }, body: manifest });
  }

  // --- the proxy, as a user runs it
  const pxPort = await port();
  const hash5 = execFileSync('htpasswd', ['-nbB', 'bench', 'bench-pw']).toString().trim().split(':')[1];
  writeFileSync(
    join(dir, 'proxy.yaml'),
    `listen: {host: 127.0.0.1, port: ${pxPort}}\nlog: {level: warn}\nauth: [{type: static, users: [{username: bench, passwordHash: "${hash5}"}]}]\nrules: [{account: bench, repository: "**", actions: [pull, push]}]\nupstreams: [{name: local, url: "${reg}"}, {name: realm, prefix: realm, url: "${treg}", tokenRealms: ["${realmUrl}"], credentials: {type: static, username: bot, password: bot-pat}}]\n`,
  );
  const nodeArgs = process.env.BENCH_NODE_ARGS ? process.env.BENCH_NODE_ARGS.split(' ') : [];
  const proxy = start(process.execPath, [...nodeArgs, join(root, 'apps/proxy/dist/main.js'), '--config', join(dir, 'proxy.yaml')], 'proxy.log', proxyEnv);
  const px = `http://127.0.0.1:${pxPort}`;
  await waitHttp(`${px}/healthz`, (s) => s === 200);
  // The same proxy with manifest coalescing off: what relaying every HEAD costs.
  const px2Port = await port();
  writeFileSync(join(dir, 'proxy2.yaml'), readFileSync(join(dir, 'proxy.yaml'), 'utf8').replace(`port: ${pxPort}`, `port: ${px2Port}`).replace(`url: "${reg}"}`, `url: "${reg}", coalesce: false}`));
  const proxy2 = ONLY.has('head') ? start(process.execPath, [...nodeArgs, join(root, 'apps/proxy/dist/main.js'), '--config', join(dir, 'proxy2.yaml')], 'proxy2.log', proxyEnv) : null;
  const px2 = `http://127.0.0.1:${px2Port}`;
  if (proxy2) await waitHttp(`${px2}/healthz`, (s) => s === 200);
  // BENCH_BASELINE=<main.js of another build>: that build with coalesce: false beside this one, for
  // an A/B of the per-request cost and of the blob relay in one run (same machine, same load, same
  // registry).
  const baseMain = ONLY.has('head') || ONLY.has('blob') ? process.env.BENCH_BASELINE : undefined;
  const px4Port = await port();
  if (baseMain) writeFileSync(join(dir, 'proxy4.yaml'), readFileSync(join(dir, 'proxy2.yaml'), 'utf8').replace(`port: ${px2Port}`, `port: ${px4Port}`));
  const proxy4 = baseMain ? start(process.execPath, [...nodeArgs, baseMain, '--config', join(dir, 'proxy4.yaml')], 'proxy4.log', proxyEnv) : null;
  const px4 = `http://127.0.0.1:${px4Port}`;
  if (proxy4) await waitHttp(`${px4}/healthz`, (s) => s === 200);
  const coalescedSoFar = async () => Number(/^registry_proxy_coalesced_requests_total\{upstream="local"\} (\d+)/m.exec(await (await fetch(`${px}/metrics`)).text())?.[1] ?? 0);
  // Tokens live 5 minutes and a full run takes longer: each proxy phase gets a fresh one.
  const freshToken = async (scopes = ['repository:bench/big:pull'], base = px) => {
    const q = new URLSearchParams({ service: 'registry-proxy' });
    for (const sc of scopes) q.append('scope', sc);
    const r = await fetch(`${base}/token?${q}`, { headers: { authorization: `Basic ${Buffer.from('bench:bench-pw').toString('base64')}` } });
    return (await r.json()).token;
  };
  let token = await freshToken();
  const auth = () => ['-H', `Authorization: Bearer ${token}`];

  // --- 1. large blob throughput and CPU per GiB
  const pull = (base, extra, pid) => {
    const [u0, s0] = pid ? cpuSplit(pid) : [0, 0];
    const t0 = process.hrtime.bigint();
    const out = execFileSync('curl', ['-sf', '-o', '/dev/null', '-w', '%{size_download}', ...extra, `${base}/v2/bench/big/blobs/${digest}`]).toString();
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    if (Number(out) !== BLOB_MIB * MIB) throw new Error(`short download: ${out}`);
    const [u1, s1] = pid ? cpuSplit(pid) : [NaN, NaN];
    const perGiB = (x) => (x * 1024) / BLOB_MIB;
    return { mibs: BLOB_MIB / secs, cpuPerGiB: perGiB(u1 - u0 + s1 - s0), userPerGiB: perGiB(u1 - u0), sysPerGiB: perGiB(s1 - s0) };
  };
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const results = {};
  if (ONLY.has('blob')) {
    // Every contender pulls once per round, in turns (direct, nginx, proxy[, baseline build]),
    // so that a drift of the machine's load or of the kernel's loopback work reaches all of
    // them alike; the CPU ratio is taken per round and its median printed. Pulling each
    // contender's runs back to back instead let the ratio swing from 1.05x to 1.68x between
    // two runs on one quiet machine.
    const contenders = [
      ['direct', reg, [], null],
      ['nginx', `http://127.0.0.1:${ngPort}`, [], ngWorker],
      ['proxy', px, auth(), proxy.pid],
    ];
    if (proxy4) contenders.push(['baseline build', px4, ['-H', `Authorization: Bearer ${await freshToken(undefined, px4)}`], proxy4.pid]);
    for (const [, base, extra, pid] of contenders) pull(base, extra, pid); // warm up caches and connections
    const runs = Object.fromEntries(contenders.map(([name]) => [name, []]));
    for (let i = 0; i < RUNS; i++) for (const [name, base, extra, pid] of contenders) runs[name].push(pull(base, extra, pid));
    for (const [name] of contenders) {
      if (process.env.BENCH_VERBOSE)
        console.log(name, runs[name].map((r) => `${r.mibs.toFixed(0)} MiB/s ${r.cpuPerGiB.toFixed(2)} s/GiB (user ${r.userPerGiB.toFixed(2)}, sys ${r.sysPerGiB.toFixed(2)})`).join(', '));
      results[name] = { mibs: median(runs[name].map((r) => r.mibs)), cpu: median(runs[name].map((r) => r.cpuPerGiB)) };
    }
    const ratios = (name) => runs[name].map((r, i) => r.cpuPerGiB / runs.nginx[i].cpuPerGiB);
    results.ratio = { proxy: ratios('proxy'), ...(proxy4 ? { baseline: ratios('baseline build') } : {}) };
  }

  // --- 2. manifest HEAD latency at 50 concurrent clients
  // node:http with keep-alive, as docker (Go's net/http) keeps its connections across HEADs;
  // undici would open a new connection for every HEAD.
  // With `rate` (requests/s in all), request i leaves at t0 + i/rate: an open loop below the
  // registry's capacity, where latency is the path's own cost rather than queueing.
  const heads = async (base, headers, rate, count = HEADS) => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 50 });
    const { hostname, port: p } = new URL(base);
    const one = () =>
      new Promise((resolve, reject) => {
        const t0 = process.hrtime.bigint();
        const req = http.request(
          { hostname, port: p, agent, method: 'HEAD', path: '/v2/bench/big/manifests/v1', headers: { accept: 'application/vnd.oci.image.manifest.v1+json', ...headers } },
          (res) => {
            res.resume();
            res.on('end', () => (res.statusCode === 200 ? resolve(Number(process.hrtime.bigint() - t0) / 1e6) : reject(new Error(`HEAD ${res.statusCode}`))));
          },
        );
        req.on('error', reject);
        req.end();
      });
    const lat = [];
    let next = 0;
    let t0 = performance.now();
    const worker = async () => {
      while (next < count) {
        const i = next++;
        if (rate) {
          const wait = t0 + (i * 1000) / rate - performance.now();
          if (wait > 0) await sleep(wait);
        }
        lat.push(await one());
      }
    };
    await Promise.all(Array.from({ length: 50 }, worker)); // warm-up pass
    next = 0;
    lat.length = 0;
    t0 = performance.now();
    await Promise.all(Array.from({ length: 50 }, worker));
    agent.destroy();
    lat.sort((a, b) => a - b);
    return { p50: lat[Math.floor(lat.length * 0.5)], p99: lat[Math.floor(lat.length * 0.99)] };
  };
  /** A closed-loop run, with the relaying process's CPU per HEAD (the warm-up pass included). */
  const headsWithCpu = async (base, headers, pid) => {
    if (!pid) return { ...(await heads(base, headers)), cpu: NaN };
    const [u0, s0] = cpuSplit(pid);
    const r = await heads(base, headers);
    const [u1, s1] = cpuSplit(pid);
    const perHead = (secs) => (secs * 1e6) / (2 * HEADS);
    if (process.env.BENCH_VERBOSE) console.log('  HEADs', base, 'user/sys us per HEAD', `${perHead(u1 - u0).toFixed(0)}/${perHead(s1 - s0).toFixed(0)}`);
    return { ...r, cpu: perHead(u1 - u0 + s1 - s0) };
  };
  const closed = {};
  let coalesced = NaN;
  if (ONLY.has('head')) {
    closed.direct = await headsWithCpu(reg, {});
    closed.nginx = await headsWithCpu(`http://127.0.0.1:${ngPort}`, {}, ngWorker);
    token = await freshToken();
    const before = await coalescedSoFar();
    closed.proxy = await headsWithCpu(px, { authorization: `Bearer ${token}` }, proxy.pid);
    coalesced = (await coalescedSoFar()) - before;
    closed['proxy, coalesce: false'] = await headsWithCpu(px2, { authorization: `Bearer ${await freshToken(undefined, px2)}` }, proxy2.pid);
    if (proxy4) closed['baseline build, coalesce: false'] = await headsWithCpu(px4, { authorization: `Bearer ${await freshToken(undefined, px4)}` }, proxy4.pid);
  }
  const RATE = Number(process.env.BENCH_RATE ?? 300);
  const PACED = Math.min(HEADS, 3000);
  const paced = ONLY.has('head')
    ? {
        direct: await heads(reg, {}, RATE, PACED),
        nginx: await heads(`http://127.0.0.1:${ngPort}`, {}, RATE, PACED),
        proxy: await heads(px, { authorization: `Bearer ${(token = await freshToken())}` }, RATE, PACED),
        'proxy, coalesce: false': await heads(px2, { authorization: `Bearer ${await freshToken(undefined, px2)}` }, RATE, PACED),
        ...(proxy4 ? { 'baseline build, coalesce: false': await heads(px4, { authorization: `Bearer ${await freshToken(undefined, px4)}` }, RATE, PACED) } : {}),
      }
    : {};

  // --- 3. peak RSS with PARALLEL concurrent large pulls through the proxy
  token = await freshToken();
  const rssBefore = status(proxy.pid, 'VmRSS');
  let peak = 0;
  const sampler = setInterval(() => (peak = Math.max(peak, status(proxy.pid, 'VmRSS'))), 50);
  const t0 = Date.now();
  await Promise.all(
    Array.from(
      { length: ONLY.has('rss') ? PARALLEL : 0 },
      () =>
        new Promise((resolve, reject) => {
          const c = spawn('curl', ['-sf', '-o', '/dev/null', ...auth(), `${px}/v2/bench/big/blobs/${digest}`]);
          c.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`curl ${code}`))));
        }),
    ),
  );
  clearInterval(sampler);
  const parallelSecs = (Date.now() - t0) / 1000;

  // --- 4. push: the same blob in one streamed PUT, into a new repository each time
  let pushN = 0;
  const pushOnce = async (base, headers, pid) => {
    const repo = `bench/push${pushN++}`;
    const started = await fetch(`${base}/v2/${repo}/blobs/uploads/`, { method: 'POST', headers });
    if (started.status !== 202) throw new Error(`push start: ${started.status}`);
    const l = new URL(started.headers.get('location'), base);
    l.searchParams.set('digest', digest);
    const before = pid ? cpu(pid) : 0;
    const beforeSplit = pid ? cpuSplit(pid) : [0, 0, 0];
    const t0 = process.hrtime.bigint();
    const code = execFileSync('curl', [
      '-sf',
      '-o',
      '/dev/null',
      '-w',
      '%{http_code}',
      '-X',
      'PUT',
      '-H',
      'Content-Type: application/octet-stream',
      ...Object.entries(headers).flatMap(([k, v]) => ['-H', `${k}: ${v}`]),
      '-T',
      blobFile,
      l.href,
    ]).toString();
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    if (code !== '201') throw new Error(`push: ${code}`);
    if (process.env.BENCH_VERBOSE && pid)
      console.log(
        '  push',
        base,
        'user/sys s, minor faults',
        cpuSplit(pid)
          .map((x, i) => (x - beforeSplit[i]).toFixed(i < 2 ? 2 : 0))
          .join('/'),
      );
    return { mibs: BLOB_MIB / secs, cpuPerGiB: pid ? ((cpu(pid) - before) * 1024) / BLOB_MIB : NaN };
  };
  const pushes = {};
  if (ONLY.has('push')) {
    const pushToken = await freshToken(Array.from({ length: 2 * (RUNS + 1) }, (_, i) => `repository:bench/push${i + 2 * (RUNS + 1)}:pull,push`));
    for (const [name, base, headers, pid] of [
      ['direct', reg, {}, null],
      ['nginx', `http://127.0.0.1:${ngPort}`, {}, ngWorker],
      ['proxy', px, { Authorization: `Bearer ${pushToken}` }, proxy.pid],
    ]) {
      await pushOnce(base, headers, pid); // warm-up
      const runs = [];
      for (let i = 0; i < RUNS; i++) runs.push(await pushOnce(base, headers, pid));
      if (process.env.BENCH_VERBOSE) console.log('push', name, runs.map((r) => `${r.mibs.toFixed(0)} MiB/s ${r.cpuPerGiB.toFixed(2)} s/GiB`).join(', '));
      pushes[name] = { mibs: median(runs.map((r) => r.mibs)), cpu: median(runs.map((r) => r.cpuPerGiB)) };
    }
  }

  // --- 5. upstream tokens: a HEAD whose scope needs a new token from the realm, then one that reuses it
  const tokenTimes = { first: [], cached: [] };
  if (ONLY.has('token')) {
    const t = await freshToken(Array.from({ length: REPOS }, (_, i) => `repository:realm/bench/r${i}:pull`));
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const head = (path) =>
      new Promise((resolve, reject) => {
        const t0 = process.hrtime.bigint();
        const req = http.request(`${px}${path}`, { agent, method: 'HEAD', headers: { authorization: `Bearer ${t}`, accept: 'application/vnd.oci.image.manifest.v1+json' } }, (res) => {
          res.resume();
          res.on('end', () => (res.statusCode === 200 ? resolve(Number(process.hrtime.bigint() - t0) / 1e6) : reject(new Error(`HEAD ${res.statusCode}`))));
        });
        req.on('error', reject);
        req.end();
      });
    for (let i = 0; i < REPOS; i++) {
      tokenTimes.first.push(await head(`/v2/realm/bench/r${i}/manifests/v1`));
      for (let k = 0; k < 5; k++) tokenTimes.cached.push(await head(`/v2/realm/bench/r${i}/manifests/v1`));
    }
    agent.destroy();
    for (const xs of Object.values(tokenTimes)) xs.sort((a, b) => a - b);
  }
  realmServer.close();

  // --- 6. the pull-through cache, on a third proxy with a cache on the same registry
  const cacheRuns = {};
  let herd = null;
  if (ONLY.has('cache')) {
    const store = join(dir, 'cache');
    const px3Port = await port();
    writeFileSync(
      join(dir, 'proxy3.yaml'),
      readFileSync(join(dir, 'proxy.yaml'), 'utf8')
        .replace(`port: ${pxPort}`, `port: ${px3Port}`)
        .replace(`url: "${reg}"}`, `url: "${reg}", cache: {store: {type: filesystem, path: "${store}"}, maxBytes: 64GiB}}`),
    );
    const proxy3 = start(process.execPath, [...nodeArgs, join(root, 'apps/proxy/dist/main.js'), '--config', join(dir, 'proxy3.yaml')], 'proxy3.log', proxyEnv);
    const px3 = `http://127.0.0.1:${px3Port}`;
    await waitHttp(`${px3}/healthz`, (st) => st === 200);
    const objectFile = (d) => join(store, 'blobs', 'sha256', d.slice(7, 9), d.slice(7));
    const upstreamRequests = async () =>
      [...(await (await fetch(`${px3}/metrics`)).text()).matchAll(/^registry_proxy_upstream_response_seconds_count\{[^}]*upstream="local"[^}]*\} (\d+)/gm)].reduce((a, m) => a + Number(m[1]), 0);
    // Each proxy signs with its own in-memory key: tokens come from the proxy they are used on.
    const t3 = ['-H', `Authorization: Bearer ${await freshToken(['repository:bench/big:pull', 'repository:bench/herd:pull'], px3)}`];
    token = await freshToken();
    const series = (fn) => {
      fn(); // warm-up
      const runs = Array.from({ length: RUNS }, fn);
      return { mibs: median(runs.map((r) => r.mibs)), cpu: median(runs.map((r) => r.cpuPerGiB)) };
    };
    cacheRuns.direct = series(() => pull(reg, [], null));
    cacheRuns.nginx = series(() => pull(`http://127.0.0.1:${ngPort}`, [], ngWorker));
    cacheRuns['proxy, uncached relay'] = series(() => pull(px, auth(), proxy.pid));
    cacheRuns['proxy, cold pull through the cache'] = series(() => {
      execFileSync('rm', ['-f', objectFile(digest)]); // the proxy finds it gone and fills again
      return pull(px3, t3, proxy3.pid);
    });
    cacheRuns['proxy, cached blob'] = series(() => pull(px3, t3, proxy3.pid));
    // BENCH_CACHE_BASELINE=<another build's apps/proxy/dist/main.js>: the same two pulls through
    // that build, on a store of its own, in this run, for before/after comparisons.
    if (process.env.BENCH_CACHE_BASELINE) {
      const bStore = join(dir, 'cache-base');
      const bPort = await port();
      writeFileSync(
        join(dir, 'proxy4.yaml'),
        readFileSync(join(dir, 'proxy3.yaml'), 'utf8')
          .replace(/port: \d+\}/, `port: ${bPort}}`)
          .replaceAll(store, bStore),
      );
      const proxy4 = start(process.execPath, [process.env.BENCH_CACHE_BASELINE, '--config', join(dir, 'proxy4.yaml')], 'proxy4.log', proxyEnv);
      const px4 = `http://127.0.0.1:${bPort}`;
      await waitHttp(`${px4}/healthz`, (st) => st === 200);
      const t4 = ['-H', `Authorization: Bearer ${await freshToken(['repository:bench/big:pull'], px4)}`];
      cacheRuns['baseline build, cold pull through the cache'] = series(() => {
        execFileSync('rm', ['-f', join(bStore, 'blobs', 'sha256', digest.slice(7, 9), digest.slice(7))]);
        return pull(px4, t4, proxy4.pid);
      });
      cacheRuns['baseline build, cached blob'] = series(() => pull(px4, t4, proxy4.pid));
      // Interleaved with the baseline's, so both see the same load.
      cacheRuns['proxy, cold pull through the cache (again)'] = series(() => {
        execFileSync('rm', ['-f', objectFile(digest)]);
        return pull(px3, t3, proxy3.pid);
      });
      proxy4.kill();
    }

    // 100 clients pull one uncached blob at once
    const herdFile = join(dir, 'herd');
    const hfd = openSync(herdFile, 'w');
    const hh = createHash('sha256');
    for (let i = 0; i < HERD_MIB / 4; i++) {
      chunk.writeUInt32LE(i, 4);
      hh.update(chunk);
      writeSync(hfd, chunk);
    }
    closeSync(hfd);
    const herdDigest = `sha256:${hh.digest('hex')}`;
    const hu = await fetch(`${reg}/v2/bench/herd/blobs/uploads/`, { method: 'POST' });
    const hl = new URL(hu.headers.get('location'), reg);
    hl.searchParams.set('digest', herdDigest);
    execFileSync('curl', ['-sf', '-X', 'PUT', '-H', 'Content-Type: application/octet-stream', '-T', herdFile, hl.href]);
    const before = await upstreamRequests();
    const cpu0 = cpu(proxy3.pid);
    const h0 = Date.now();
    const sizes = await Promise.all(
      Array.from(
        { length: HERD },
        () =>
          new Promise((resolve) => {
            const c = spawn('curl', ['-s', '-o', '/dev/null', '-w', '%{size_download}', ...t3, `${px3}/v2/bench/herd/blobs/${herdDigest}`]);
            let out = '';
            c.stdout.on('data', (d) => (out += d));
            // 'close', not 'exit': 'exit' can come before stdout's last bytes (curl's size), which read as 0.
            c.once('close', () => resolve(Number(out)));
          }),
      ),
    );
    herd = { upstream: (await upstreamRequests()) - before, complete: sizes.filter((n) => n === HERD_MIB * MIB).length, secs: (Date.now() - h0) / 1000, cpu: cpu(proxy3.pid) - cpu0 };
  }

  const f = (n, d = 0) => n.toFixed(d).padStart(9);
  console.log(`\nregistry-proxy pull benchmark (${BLOB_MIB} MiB blob, median of ${RUNS} runs; ${new Date().toISOString()})`);
  console.log(
    `  proxy environment: ${
      process.env.BENCH_PROXY_ENV === 'none'
        ? 'bare node (BENCH_PROXY_ENV=none)'
        : Object.entries(imageEnv)
            .map(([k, v]) => `${k}=${v}`)
            .join(' ')
    }`,
  );
  if (results.direct) console.log(`\n  large blob         ${'MiB/s'.padStart(9)} ${'CPU s/GiB'.padStart(9)}   (CPU of the relaying process)`);
  const { ratio: blobRatios, ...blobResults } = results;
  for (const [name, r] of Object.entries(blobResults)) console.log(`  ${name.padEnd(18)} ${f(r.mibs)} ${Number.isNaN(r.cpu) ? '        -' : f(r.cpu, 2)}`);
  if (blobRatios) {
    const show = (xs) => `median ${median(xs).toFixed(2)}x (rounds: ${xs.map((x) => x.toFixed(2)).join(', ')})`;
    console.log(`  proxy / nginx CPU per GiB, per round: ${show(blobRatios.proxy)} (target <= 1.2x, issue 12)`);
    if (blobRatios.baseline) console.log(`  baseline build / nginx, per round: ${show(blobRatios.baseline)}`);
  }
  if (closed.direct) {
    const d = closed.direct.p50;
    console.log(`\n  manifest HEAD, 50 clients in a closed loop, ${HEADS} requests   p50 ms    p99 ms  CPU us/HEAD`);
    for (const [name, h] of Object.entries(closed)) console.log(`  ${name.padEnd(48)}${f(h.p50, 2)} ${f(h.p99, 2)} ${Number.isNaN(h.cpu) ? '          -' : f(h.cpu).padStart(11)}`);
    console.log(
      `  added at p50: proxy ${(closed.proxy.p50 - d).toFixed(2)} ms (target <= 2 ms); proxy with coalesce: false ${(closed['proxy, coalesce: false'].p50 - d).toFixed(2)} ms; nginx ${(closed.nginx.p50 - d).toFixed(2)} ms`,
    );
    const ratio = (name) => (closed[name] && closed.nginx ? ` ${name} ${(closed[name].cpu / closed.nginx.cpu).toFixed(1)}x;` : '');
    console.log(`  CPU per HEAD / nginx's:${ratio('proxy')}${ratio('proxy, coalesce: false')}${ratio('baseline build, coalesce: false')} (target for coalesce: false <= 2x, issue 12)`);
    console.log(`  coalescing: ${coalesced} of the proxy's ${2 * HEADS} HEADs were answered by an upstream request another HEAD had started`);
    console.log(`  (50 clients in a closed loop saturate the registry on these 2 cores, so each hop's CPU becomes queueing)`);
    console.log(`\n  manifest HEAD, 50 clients paced to ${RATE}/s, ${PACED} requests   p50 ms    p99 ms`);
    for (const [name, h] of Object.entries(paced)) console.log(`  ${name.padEnd(48)}${f(h.p50, 2)} ${f(h.p99, 2)}`);
    console.log(
      `  added at p50: proxy ${(paced.proxy.p50 - paced.direct.p50).toFixed(2)} ms (target <= 1 ms, issue 12); with coalesce: false ${(paced['proxy, coalesce: false'].p50 - paced.direct.p50).toFixed(2)} ms; nginx ${(paced.nginx.p50 - paced.direct.p50).toFixed(2)} ms`,
    );
  }
  if (ONLY.has('rss')) console.log(`\n  ${PARALLEL} concurrent ${BLOB_MIB} MiB pulls through the proxy: ${((PARALLEL * BLOB_MIB) / parallelSecs).toFixed(0)} MiB/s in all`);
  if (ONLY.has('rss')) console.log(`  proxy RSS: ${rssBefore.toFixed(0)} MB before, peak ${peak.toFixed(0)} MB during (target <= 200 MB); VmHWM ${status(proxy.pid, 'VmHWM').toFixed(0)} MB`);
  if (pushes.proxy) {
    console.log(`\n  push, one streamed PUT of ${BLOB_MIB} MiB   ${'MiB/s'.padStart(9)} ${'CPU s/GiB'.padStart(9)}`);
    for (const [name, r] of Object.entries(pushes)) console.log(`  ${name.padEnd(38)}${f(r.mibs)} ${Number.isNaN(r.cpu) ? '        -' : f(r.cpu, 2)}`);
    console.log(`  proxy / nginx CPU per GiB: ${(pushes.proxy.cpu / pushes.nginx.cpu).toFixed(2)}x (target <= 1.5x, issue 12)`);
  }
  if (tokenTimes.first.length > 0) {
    const q = (xs, p) => xs[Math.floor(xs.length * p)];
    console.log(`\n  manifest HEAD through the proxy to an upstream behind a token realm   p50 ms    p99 ms`);
    console.log(`  needs a new upstream token (${String(tokenTimes.first.length).padStart(3)} scopes)                       ${f(q(tokenTimes.first, 0.5), 2)} ${f(q(tokenTimes.first, 0.99), 2)}`);
    console.log(`  reuses the cached token    (${String(tokenTimes.cached.length).padStart(3)} requests)                     ${f(q(tokenTimes.cached, 0.5), 2)} ${f(q(tokenTimes.cached, 0.99), 2)}`);
  }
  if (cacheRuns.direct) {
    console.log(`\n  pull-through cache, ${BLOB_MIB} MiB blob      ${'MiB/s'.padStart(9)} ${'CPU s/GiB'.padStart(9)}   (CPU of the relaying process)`);
    for (const [name, r] of Object.entries(cacheRuns)) console.log(`  ${name.padEnd(38)}${f(r.mibs)} ${Number.isNaN(r.cpu) ? '        -' : f(r.cpu, 2)}`);
    const c = cacheRuns['proxy, cached blob'];
    console.log(`  cached: ${(c.mibs / cacheRuns.direct.mibs).toFixed(2)}x the registry's own MiB/s (goal >= 1x); ${(c.cpu / cacheRuns.nginx.cpu).toFixed(2)}x nginx's CPU per GiB (goal <= 1x)`);
    console.log(
      `  cold pull through the cache: ${(cacheRuns['proxy, cold pull through the cache'].cpu / cacheRuns['proxy, uncached relay'].cpu).toFixed(2)}x the CPU of the uncached relay (goal <= 1.3x)`,
    );
    const b = cacheRuns['baseline build, cold pull through the cache'];
    if (b) console.log(`  baseline build, cold pull through the cache: ${(b.cpu / cacheRuns['proxy, uncached relay'].cpu).toFixed(2)}x the CPU of the uncached relay`);
    console.log(
      `  ${HERD} concurrent cold pulls of one ${HERD_MIB} MiB blob: ${herd.upstream} upstream request(s) (goal 1), ${herd.complete}/${HERD} complete, ${herd.secs.toFixed(1)} s, proxy CPU ${herd.cpu.toFixed(2)} s`,
    );
  }
} finally {
  await cleanup();
  if (process.env.BENCH_KEEP) console.log(`kept ${dir}`);
  else execFileSync('rm', ['-rf', dir]);
}
