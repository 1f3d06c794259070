#!/usr/bin/env node
// Differential fuzzing of the upstream wire (issue 12, "Prove the wire"): mutations of normal
// and broken HTTP/1.1 responses, served on loopback, read by node:http (llhttp) and by the
// project's transport. They must agree on status, headers and body bytes, or both refuse, or
// the transport refuses on purpose (STRICTER in wire-diff.test.support.ts). Every other
// disagreement is printed and saved to the corpus that `npm test` replays (wire-diff.test.ts);
// fix the parser (or, for a deliberate refusal, add a commented STRICTER class), then re-run.
//
// Needs the library built: npx tsc -p libs/registry-core/tsconfig.build.json
// Env: FUZZ_CASES (100000), FUZZ_SEED (1), FUZZ_PARALLEL (32), FUZZ_SAVE (1: write the corpus).
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const root = join(import.meta.dirname, '../..');
const dist = join(root, 'libs/registry-core/dist');
// The transport is not part of the package's public API (index.ts); the fuzzer reads the wire file itself.
const { Http1Transport } = await import(join(dist, 'upstream/http1.js'));
const { CaseServer, runCase, WIRE_TABLE } = await import(join(dist, 'upstream/wire-diff.test.support.js'));

const CASES = Number(process.env.FUZZ_CASES ?? 100_000);
const PARALLEL = Number(process.env.FUZZ_PARALLEL ?? 32);
const corpusFile = join(root, 'libs/registry-core/src/upstream/corpus/wire-diff.json');

// mulberry32: a small seeded PRNG, so a run can be repeated exactly.
let state = Number(process.env.FUZZ_SEED ?? 1) >>> 0;
const rand = () => {
  state = (state + 0x6d2b79f5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const pick = (a) => a[Math.floor(rand() * a.length)];
const int = (n) => Math.floor(rand() * n);

const seeds = WIRE_TABLE.map(([, c]) => c).filter((c) => c.bytes.length < 10_000);
// Bytes and tokens that matter to framing.
const ATOMS = ['\r', '\n', '\r\n', '\0', ' ', '\t', ':', ',', ';', '"', '0', '1', '9', 'a', 'f', 'F', 'x', '-', '\x7f', '\x80', '\xff', '\x1b', '\x0b', '\x0c'];
const LINES = [
  'Content-Length: 0',
  'Content-Length: 2',
  'Content-Length: 5',
  'Content-Length: 100',
  'Content-Length: -1',
  'Content-Length: 1e3',
  'Content-Length: 0x5',
  'Content-Length: 99999999999999999999',
  'content-length:5',
  'Content-Length: 2, 2',
  'Content-Length: 5 ',
  'Content-Length:\t5',
  'Transfer-Encoding: chunked',
  'transfer-encoding: CHUNKED',
  'Transfer-Encoding: gzip',
  'Transfer-Encoding: chunked, gzip',
  'Transfer-Encoding: gzip, chunked',
  'Transfer-Encoding: identity',
  'Transfer-Encoding:',
  'Transfer-Encoding: xchunked',
  'Transfer-Encoding: chunked;q=1',
  'Connection: close',
  'Connection: keep-alive',
  'Connection: upgrade',
  'Keep-Alive: timeout=5',
  'Upgrade: h2c',
  'X-A: b',
  'X-A:  b  ',
  'Trailer: X-T',
];
const STATUS = [
  'HTTP/1.1 200 OK',
  'HTTP/1.1 204 No Content',
  'HTTP/1.1 304 Not Modified',
  'HTTP/1.0 200 OK',
  'HTTP/1.1 100 Continue',
  'HTTP/1.1 101 Switching',
  'HTTP/1.1 404 Not Found',
  'HTTP/1.1 999 X',
  'HTTP/1.1 200',
  'HTTP/1.1  200 OK',
  'HTTP/1.1 200  OK',
  'HTTP/1.2 200 OK',
  'HTTP/2.0 200 OK',
  'http/1.1 200 OK',
  'HTTP/1.1 2000 OK',
  'HTTP/1.1 20 OK',
];

function mutate(s) {
  const n = 1 + int(3);
  for (let k = 0; k < n; k++) {
    const i = int(s.length + 1);
    switch (int(10)) {
      case 0: // insert a framing atom
        s = s.slice(0, i) + pick(ATOMS) + s.slice(i);
        break;
      case 1: // delete a few bytes
        s = s.slice(0, i) + s.slice(i + 1 + int(3));
        break;
      case 2: // replace a byte
        s = s.slice(0, i) + String.fromCharCode(int(256)) + s.slice(i + 1);
        break;
      case 3: {
        // add a header line to the head
        const end = s.indexOf('\r\n');
        if (end > 0) s = `${s.slice(0, end)}\r\n${pick(LINES)}${s.slice(end)}`;
        break;
      }
      case 4: {
        // replace the status line
        const end = s.indexOf('\r\n');
        s = pick(STATUS) + (end >= 0 ? s.slice(end) : '\r\n\r\n');
        break;
      }
      case 5: // truncate
        s = s.slice(0, i);
        break;
      case 6: // append the start of another seed (a second response, stray bytes)
        s += pick(seeds).bytes.slice(0, 1 + int(80));
        break;
      case 7: {
        // change a number
        const m = [...s.matchAll(/\d+/g)];
        if (m.length) {
          const x = pick(m);
          s = s.slice(0, x.index) + String(pick([0, 1, 2, 3, 5, 10, 15, 16, 255, 65536, Number(x[0]) + 1, Math.max(0, Number(x[0]) - 1)])) + s.slice(x.index + x[0].length);
        }
        break;
      }
      case 8: {
        // duplicate a line
        const lines = s.split('\r\n');
        if (lines.length > 1) {
          const j = int(lines.length);
          lines.splice(j, 0, lines[j]);
          s = lines.join('\r\n');
        }
        break;
      }
      default: {
        // flip the case of a byte
        const c = s[i];
        if (c) s = s.slice(0, i) + (c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase()) + s.slice(i + 1);
      }
    }
  }
  return s;
}

const server = new CaseServer();
await server.start();
const transport = new Http1Transport({ maxIdlePerOrigin: 0 });
const counts = { same: 0, 'both-refuse': 0, stricter: 0, differ: 0 };
const stricter = {};
const found = [];
const started = Date.now();
let done = 0;
let finished = 0;

async function worker() {
  while (done < CASES) {
    done++;
    const seed = pick(seeds);
    const c = { method: rand() < 0.15 ? 'HEAD' : seed.method, bytes: mutate(seed.bytes), ...(rand() < 0.1 ? { split: 1 + int(seed.bytes.length) } : {}) };
    const { verdict, ours, node } = await runCase(server, transport, c);
    counts[verdict.kind]++;
    if (verdict.kind === 'stricter') stricter[verdict.name] = (stricter[verdict.name] ?? 0) + 1;
    if (verdict.kind === 'differ' && found.length < 200) {
      found.push({ ...c, found: `fuzz seed ${process.env.FUZZ_SEED ?? 1}: ours ${JSON.stringify(ours).slice(0, 160)} / llhttp ${JSON.stringify(node).slice(0, 160)}` });
    }
    if (++finished % 10_000 === 0) console.error(`${finished} cases, ${((Date.now() - started) / 1000).toFixed(0)} s, ${counts.differ} disagreements`);
  }
}
await Promise.all(Array.from({ length: PARALLEL }, worker));
await transport.close();
await server.close();

console.log(JSON.stringify({ cases: done, seconds: Math.round((Date.now() - started) / 1000), ...counts, stricterClasses: stricter }, null, 2));
for (const f of found.slice(0, 20)) console.log(JSON.stringify(f));
if (found.length && process.env.FUZZ_SAVE !== '0') {
  const corpus = JSON.parse(readFileSync(corpusFile, 'utf8'));
  const known = new Set(corpus.map((c) => `${c.method} ${c.bytes}`));
  for (const f of found) if (!known.has(`${f.method} ${f.bytes}`)) corpus.push(f);
  writeFileSync(corpusFile, `${JSON.stringify(corpus, null, 1)}\n`);
  console.log(`saved ${found.length} disagreements to the corpus`);
}
process.exitCode = counts.differ ? 1 : 0;
