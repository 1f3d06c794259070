#!/usr/bin/env node
// Instructions per token, for an A/B of two builds that req/s and CPU time on a shared machine
// cannot resolve: each build's proxy runs under callgrind (the load generator, in this process,
// does not), answers a warm-up, has its counters zeroed, answers N tokens of one kind, and has
// them dumped; instructions / N is the proxy's cost of one token in that state (start-up,
// warm-up and the JIT's first compiles are not counted). Same configuration as tokens.mjs:
// one htpasswd user, limits raised out of the way, log level info to a file.
//
//   node tools/bench/token-instructions.mjs [main.js ...]   (default: this tree's build)
//
// Each scenario is measured TI_PASSES times in a row: the JIT's background compiles and the GC
// threads count too, so passes that disagree say the process had not settled.
// Env: TI_N (2000 tokens per pass), TI_PASSES (2), TI_WARMUP (1000), TI_CLIENTS (50), TI_SCENARIOS (get,password,refresh).
// Needs valgrind (callgrind_control) and htpasswd. Loopback only. Prints numbers, asserts every answer is a 200 with a token.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, openSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, imageEnv, root } from './common.mjs';

const builds = process.argv.length > 2 ? process.argv.slice(2).map((p) => resolve(p)) : [join(root, 'apps/proxy/dist/main.js')];
const N = Number(process.env.TI_N ?? 2000);
const WARMUP = Number(process.env.TI_WARMUP ?? 1000);
const CLIENTS = Number(process.env.TI_CLIENTS ?? 50);
const PASSES = Number(process.env.TI_PASSES ?? 2);
const SCENARIOS = (process.env.TI_SCENARIOS ?? 'get,password,refresh').split(',');
const dir = mkdtempSync(join(tmpdir(), 'rp-tokinstr-'));

writeFileSync(join(dir, 'htpasswd'), execFileSync('htpasswd', ['-nbB', 'bench', 'bench-pw']));
const basic = `Basic ${Buffer.from('bench:bench-pw').toString('base64')}`;
const form = 'application/x-www-form-urlencoded';
const limits = '{perClient: {burst: 1000000000, perSecond: 1000000000}, perAccount: {burst: 1000000000, perSecond: 1000000000}, failures: {points: 1000000000, durationSeconds: 1}}';

/** `n` requests from CLIENTS keep-alive connections in a closed loop; every answer must be a 200 with a token. */
const load = async (port, n, make) => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: CLIENTS });
  let left = n;
  const one = () =>
    new Promise((ok, fail) => {
      const { method, path, headers, body } = make();
      const r = http.request({ host: '127.0.0.1', port, agent, method, path, headers: body ? { ...headers, 'content-length': Buffer.byteLength(body) } : headers }, (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          if (res.statusCode !== 200 || !JSON.parse(text).token) fail(new Error(`${method} ${path}: ${res.statusCode} ${text.slice(0, 200)}`));
          else ok();
        });
      });
      r.on('error', fail);
      r.end(body);
    });
  const worker = async () => {
    while (left-- > 0) await one();
  };
  await Promise.all(Array.from({ length: Math.min(CLIENTS, n) }, worker));
  agent.destroy();
};

const results = [];
for (const [b, main] of builds.entries()) {
  const port = await freePort();
  writeFileSync(
    join(dir, `proxy-${b}.yaml`),
    `listen: {host: 127.0.0.1, port: ${port}}
log: {level: info}
service: registry-proxy
auth: [{type: static, htpasswd: ${join(dir, 'htpasswd')}}]
rules: [{account: bench, repository: "**", actions: [pull, push]}]
rateLimits: ${limits}
upstreams: [{name: local, url: "http://127.0.0.1:9"}]
`,
  );
  const out = join(dir, `cg-${b}`);
  const log = openSync(join(dir, `proxy-${b}.log`), 'a');
  const vg = spawn('valgrind', ['--tool=callgrind', `--callgrind-out-file=${out}`, process.execPath, main, '--config', join(dir, `proxy-${b}.yaml`)], {
    stdio: ['ignore', log, log],
    env: { ...process.env, ...imageEnv },
  });
  try {
    for (let i = 0; ; i++) {
      try {
        if ((await fetch(`http://127.0.0.1:${port}/healthz`)).status === 200) break;
      } catch {}
      if (i > 1200 || vg.exitCode !== null) throw new Error(`${main}: not up (see ${join(dir, `proxy-${b}.log`)})`);
      await sleep(250);
    }
    const login = await fetch(`http://127.0.0.1:${port}/token`, {
      method: 'POST',
      headers: { 'content-type': form },
      body: new URLSearchParams({ grant_type: 'password', username: 'bench', password: 'bench-pw', service: 'registry-proxy', client_id: 'docker', access_type: 'offline' }),
    });
    const refresh = (await login.json()).refresh_token;
    const kinds = {
      get: () => ({ method: 'GET', path: '/token?service=registry-proxy&scope=repository%3Abench%2Fapp%3Apull', headers: { authorization: basic } }),
      password: () => ({
        method: 'POST',
        path: '/token',
        headers: { 'content-type': form },
        body: 'scope=repository%3Abench%2Fapp%3Apull&service=registry-proxy&client_id=containerd-client&grant_type=password&username=bench&password=bench-pw',
      }),
      refresh: () => ({
        method: 'POST',
        path: '/token',
        headers: { 'content-type': form },
        body: `scope=repository%3Abench%2Fapp%3Apull&service=registry-proxy&client_id=docker&grant_type=refresh_token&refresh_token=${refresh}`,
      }),
    };
    for (const s of SCENARIOS) {
      await load(port, WARMUP, kinds[s]);
      const passes = [];
      for (let pass = 0; pass < PASSES; pass++) {
        execFileSync('callgrind_control', ['--zero', String(vg.pid)], { stdio: 'ignore' });
        await load(port, N, kinds[s]);
        const before = new Set(readdirSync(dir));
        execFileSync('callgrind_control', ['--dump', String(vg.pid)], { stdio: 'ignore' });
        const dump = readdirSync(dir).find((f) => f.startsWith(`cg-${b}.`) && !before.has(f));
        if (!dump) throw new Error('callgrind wrote no dump');
        const text = readFileSync(join(dir, dump), 'utf8');
        passes.push(Number(/^(?:summary|totals): (\d+)/m.exec(text)?.[1]) / N);
      }
      results.push({ build: main, scenario: s, passes });
    }
  } finally {
    vg.kill('SIGTERM');
    await new Promise((r) => (vg.exitCode === null ? vg.once('exit', r) : r()));
  }
}
console.log(`\ninstructions per token (callgrind, proxy process only; ${PASSES} passes of ${N} tokens per scenario after ${WARMUP} warm-up, ${CLIENTS} clients; ${new Date().toISOString()})`);
for (const r of results) console.log(`  ${r.scenario.padEnd(9)} ${r.passes.map((p) => Math.round(p).toLocaleString('en').padStart(11)).join(' ')}  ${r.build}`);
execFileSync('rm', ['-rf', dir]);
