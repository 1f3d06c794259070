#!/usr/bin/env node
// Request fuzzer (issue 11, "prove it"): starts a real docker-registry and the built proxy
// (apps/proxy/dist/main.js, as users run it) in front of it, then sends generated requests —
// paths, methods, headers, tokens (valid, forged, expired, unsigned, bound to another host or
// upstream), bodies, framing (bad chunks, Content-Length mismatches, CL+TE), aborts — and prints:
// crashes, 5xx made by the proxy itself (vs relayed from the registry), responses that break
// the registry error format, error answers of the proxy whose (code, HTTP status) pair is not a
// row of the error table (registry-core's RegistryErrors, which docs/errors.md lists), hangs,
// and the proxy's fd and RSS growth (from /proc/<pid>).
// Not a timed test. Needs tools/install-deps.sh and a build (`npm run build`).
//
//   node tools/fuzz/requests.mjs [count=100000] [seed=1] [concurrency=32]
//
// Exit code 1 when anything but "0/0/0" was found.
import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, openSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { allowedPairs, fuzz } from './cases.mjs';

const root = join(import.meta.dirname, '../..');
const T = await import(join(root, 'libs/testing/dist/index.js'));
const core = await import(join(root, 'libs/registry-core/dist/index.js'));
const { UnsecuredJWT } = await import('jose');
const bcrypt = (await import('bcryptjs')).default;

const COUNT = Number(process.argv[2] ?? 100_000);
const SEED = Number(process.argv[3] ?? 1);
const CONCURRENCY = Number(process.argv[4] ?? 32);
const dir = mkdtempSync(join(tmpdir(), 'rp-fuzz-'));
const stops = [];
const USER = 'alice';
const PASSWORD = 'fuzz-pw-41d2';

const fds = (pid) => readdirSync(`/proc/${pid}/fd`).length;
const rss = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;

/** GET /token with Basic credentials and a chosen Host. */
function tokenFor(port, scope, host) {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path: `/token?service=registry-proxy&scope=${encodeURIComponent(scope)}`,
        headers: { host, authorization: `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}` },
      },
      (res) => {
        let b = '';
        res.on('data', (c) => (b += c));
        res.on('end', () => (res.statusCode === 200 ? resolve(JSON.parse(b).token) : reject(new Error(`token ${scope}: ${res.statusCode} ${b}`))));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** The `CODE status` pairs of docs/errors.md's registry table, to make sure the fuzzer checks against the table users read. */
function documentedPairs() {
  const text = readFileSync(join(root, 'docs/errors.md'), 'utf8');
  const section = text.slice(text.indexOf('## Registry protocol errors'), text.indexOf('## Configuration and programming errors'));
  return new Set([...section.matchAll(/^\|\s*`([A-Z_]+)`\s*\|\s*(\d{3})\s*\|/gm)].map((m) => `${m[1]} ${m[2]}`));
}

let code = 0;
try {
  const allowed = allowedPairs(core.RegistryErrors);
  const documented = documentedPairs();
  if ([...allowed].some((p) => !documented.has(p)) || [...documented].some((p) => !allowed.has(p)))
    throw new Error(`docs/errors.md and RegistryErrors disagree: table ${[...allowed].sort().join(', ')}; docs ${[...documented].sort().join(', ')}`);
  const registry = await T.startRegistry({ up: 'up-pw' });
  stops.push(() => registry.stop());
  const push = new T.Pusher(registry.url, 'up', 'up-pw');
  const image = T.sampleImage('amd64');
  await push.image('team/app', 'v1', image);
  await push.image('secret/app', 'v1', T.sampleImage('amd64'));

  const pem = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
  writeFileSync(join(dir, 'signing.pem'), pem);
  const port = await T.freePort();
  const host = `127.0.0.1:${port}`;
  writeFileSync(
    join(dir, 'proxy.yaml'),
    `listen: {host: 127.0.0.1, port: ${port}}
log: {level: info}
tokens: {signingKey: {file: ${join(dir, 'signing.pem')}}}
auth: [{type: static, users: [{username: ${USER}, passwordHash: "${bcrypt.hashSync(PASSWORD, 4)}"}]}]
rules:
  - {hosts: [vb.test], account: "**", repository: "**", actions: []}
  - {account: ${USER}, repository: ["push/**", "mirror/push/**"], actions: [pull, push, delete]}
  - {account: ${USER}, repository: ["team/**", "mirror/**", "app"], actions: [pull]}
upstreams:
  - {name: local, url: "${registry.url}", credentials: {type: static, username: up, password: up-pw}}
  - {name: mirror, prefix: mirror, namespace: team, mirrorOf: [quay.localtest], url: "${registry.url}", credentials: {type: static, username: up, password: up-pw}}
`,
  );
  const logFile = join(dir, 'proxy.log');
  const log = openSync(logFile, 'a');
  const proxy = spawn(process.execPath, [join(root, 'apps/proxy/dist/main.js'), '--config', join(dir, 'proxy.yaml')], {
    stdio: ['ignore', log, log],
    env: { ...process.env, MALLOC_TRIM_THRESHOLD_: '67108864' },
  });
  let exited;
  proxy.once('exit', (c, s) => (exited = { code: c, signal: s }));
  stops.unshift(() => (exited ? undefined : new Promise((r) => (proxy.once('exit', r), proxy.kill('SIGTERM')))));
  await T.waitFor('proxy', async () => (await fetch(`http://${host}/healthz`)).status === 200);

  const keys = await core.KeySet.fromPem(pem);
  const mint = (k) => new core.TokenService({ issuer: 'registry-proxy', service: 'registry-proxy', keys: k, accessTokenTtl: 60, refreshTokenTtl: 60, algorithms: ['ES256'], clockTolerance: 0 });
  const access = [{ type: 'repository', name: 'team/app', actions: ['pull'], upstream: 'local' }];
  const tokens = {
    pull: await tokenFor(port, 'repository:team/app:pull', host),
    push: await tokenFor(port, 'repository:push/fuzz:pull,push', host),
    mirror: await tokenFor(port, 'repository:quay.localtest/team/app:pull', host),
    otherHost: await tokenFor(port, 'repository:team/app:pull', 'other.test:5000'),
    expired: (await mint(keys).issueAccessToken('alice', access, new Date(Date.now() - 3_600_000))).token,
    foreignKey: (await mint(await core.KeySet.ephemeral()).issueAccessToken('alice', access)).token,
    unsigned: new UnsecuredJWT({ access }).setIssuer('registry-proxy').setAudience('registry-proxy').setSubject('alice').setExpirationTime('1h').encode(),
  };
  const ctx = { host, seed: SEED, user: USER, password: PASSWORD, tokens, manifestDigest: image.digest, blobDigest: image.blobs[0].digest };

  // Warm up (JIT, pools, caches) before the baseline is taken.
  await fuzz({ port, ctx: { ...ctx, seed: SEED + 1_000_000 }, seed: SEED + 1_000_000, count: 2000, concurrency: CONCURRENCY, alive: () => !exited });
  await new Promise((r) => setTimeout(r, 3000));
  const base = { fds: fds(proxy.pid), rss: rss(proxy.pid) };
  const samples = [];
  const started = Date.now();
  console.log(`fuzzing ${COUNT} cases, seed ${SEED}, concurrency ${CONCURRENCY}, proxy pid ${proxy.pid}: baseline ${base.fds} fds, ${base.rss.toFixed(1)} MiB RSS`);
  const stats = await fuzz({
    port,
    ctx,
    seed: SEED,
    count: COUNT,
    concurrency: CONCURRENCY,
    alive: () => !exited,
    errorTable: core.RegistryErrors,
    onProgress: (s) => {
      if (s.cases % 10_000 !== 0 || exited) return;
      samples.push({ cases: s.cases, fds: fds(proxy.pid), rss: rss(proxy.pid) });
      console.log(`  ${s.cases} cases: ${samples.at(-1).fds} fds, ${samples.at(-1).rss.toFixed(1)} MiB RSS, ${(s.cases / ((Date.now() - started) / 1000)).toFixed(0)} cases/s`);
    },
  });
  await new Promise((r) => setTimeout(r, 5000)); // lingering closes and keep-alive timers settle
  const after = exited ? undefined : { fds: fds(proxy.pid), rss: rss(proxy.pid) };

  // 5xx made by the proxy: its request has a warning or error line, or was never relayed.
  const lines = readFileSync(logFile, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      try {
        return JSON.parse(l);
      } catch {
        return { raw: l };
      }
    });
  const flagged = new Set(lines.filter((l) => l.level >= 40 && typeof l.req_id === 'string').map((l) => l.req_id));
  const relayedIds = new Set(lines.filter((l) => l.msg === 'request' && l.upstream !== undefined).map((l) => l.req_id));
  const own = stats.fiveXX.filter((f) => flagged.has(f.id) || !relayedIds.has(f.id));
  const relayed = stats.fiveXX.length - own.length;
  const unhandled = lines.filter((l) => l.msg === 'unhandled error').length;
  // An answer relayed from the registry keeps the registry's status and body (docs/errors.md);
  // only the proxy's own answers must be rows of the table.
  const ownPairs = stats.badPairs.filter((b) => !relayedIds.has(b.id));
  const relayedPairs = new Map();
  for (const b of stats.badPairs) if (relayedIds.has(b.id)) relayedPairs.set(b.pair, (relayedPairs.get(b.pair) ?? 0) + 1);

  console.log(
    `\ncases: ${stats.cases} in ${((Date.now() - started) / 1000).toFixed(0)} s; answered ${stats.answered}, closed without an answer ${stats.closedWithoutAnswer}, aborted by the fuzzer ${stats.aborted}`,
  );
  console.log(`statuses: ${JSON.stringify(stats.status)}`);
  console.log(`crashes: ${exited ? `1 (${JSON.stringify(exited)})` : 0}`);
  console.log(`5xx made by the proxy: ${own.length} (relayed from the registry: ${relayed}; 'unhandled error' log lines: ${unhandled})`);
  console.log(`responses breaking the registry error format: ${stats.formatProblemCount}`);
  console.log(
    `(code, status) pairs outside the error table (${allowed.size} rows): ${ownPairs.length} made by the proxy; relayed from the registry: ${JSON.stringify(Object.fromEntries(relayedPairs))}`,
  );
  console.log(`100 Continue before a 401/403: ${stats.continueBeforeRefusal.length}`);
  console.log(`hangs (no answer and no close in 15 s): ${stats.timeouts}`);
  if (after) console.log(`fds: ${base.fds} -> ${after.fds}; RSS: ${base.rss.toFixed(1)} -> ${after.rss.toFixed(1)} MiB (samples: ${samples.map((s) => `${s.fds}/${s.rss.toFixed(0)}`).join(' ')})`);
  for (const [what, list] of [
    ['own 5xx', own],
    ['format', stats.formatProblems],
    ['pair', ownPairs],
    ['continue', stats.continueBeforeRefusal],
    ['odd', stats.garbage],
  ]) {
    for (const x of list.slice(0, 10)) console.log(`  ${what}: ${JSON.stringify(x)}`);
  }
  if (exited || own.length > 0 || stats.formatProblemCount > 0 || ownPairs.length > 0 || stats.timeouts > 0 || stats.continueBeforeRefusal.length > 0) code = 1;
} catch (err) {
  console.error(err);
  code = 2;
} finally {
  for (const s of stops) await s();
}
process.exit(code);
