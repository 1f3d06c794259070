#!/usr/bin/env node
// The upstream wire's cost in instructions, for an A/B of two builds that wall-clock and CPU
// time on a shared machine cannot resolve: run it under callgrind once per build and per load,
//
//   valgrind --tool=callgrind --callgrind-out-file=/dev/null node tools/bench/wire-instructions.mjs <registry-core dist> <HEADs> <GETs> <MiB per GET>
//
// and compare the "Collected" totals; the difference between two loads (e.g. 2000 and 6000
// HEADs) is the per-request cost without start-up and JIT. The client (Http1Transport from the
// given dist) runs in this process; the upstream, a node:http server, in a child that callgrind
// does not trace. Loopback only.
import { fork } from 'node:child_process';
import { createServer } from 'node:http';
import { join, resolve } from 'node:path';

if (process.argv[2] === 'server') {
  const blob = Buffer.alloc(Number(process.argv[3]) * 1024 * 1024, 7);
  const server = createServer((q, res) => {
    res.setHeader('content-length', String(q.url === '/blob' ? blob.length : 512));
    res.setHeader('docker-content-digest', `sha256:${'a'.repeat(64)}`);
    res.end(q.method === 'HEAD' ? undefined : q.url === '/blob' ? blob : Buffer.alloc(512));
  });
  server.keepAliveTimeout = 60_000;
  server.listen(0, '127.0.0.1', () => process.send(server.address().port));
} else {
  const [dist = 'libs/registry-core/dist', heads = '2000', gets = '4', mib = '32'] = process.argv.slice(2);
  const { Http1Transport } = await import(join(resolve(dist), 'upstream/http1.js'));
  const child = fork(process.argv[1], ['server', mib]);
  const port = await new Promise((r) => child.once('message', r));
  const transport = new Http1Transport();
  const req = (path, method) => ({ url: new URL(`http://127.0.0.1:${port}${path}`), method, headers: { accept: '*/*' }, headersTimeoutMs: 60_000, bodyIdleTimeoutMs: 60_000 });
  let bytes = 0;
  for (let i = 0; i < Number(heads); i++) await (await transport.request(req('/v2/bench/manifests/1', 'HEAD'))).body.dump();
  for (let i = 0; i < Number(gets); i++) {
    const r = await transport.request(req('/blob', 'GET'));
    for await (const c of r.body) {
      bytes += c.length;
      r.body.release(c);
    }
  }
  console.log(`${heads} HEADs, ${gets} GETs, ${bytes} body bytes`);
  await transport.close();
  child.kill();
}
