#!/usr/bin/env node
// What a cold cache fill must do besides relaying, measured alone in this process: SHA-256 of
// the bytes, and writing them to a file (writev of 1 MiB, as the fill batches them). CPU
// seconds per GiB (process.cpuUsage), median of 3, over 512 MiB in 64 KiB chunks (the size the
// upstream wire hands over). Add the uncached relay's CPU per GiB (tools/bench/run.mjs) to get
// the floor of a cold pull through the cache.
// Then the floor of a cache hit: the file read back (1 MiB reads into reused buffers, as
// src/cache/serve.ts does) and written to a socket that a curl process drains, which is what a
// hit costs in any Node process (Node has no sendfile(2) to a socket). Compare with nginx's
// CPU per GiB relaying the same blob in tools/bench/run.mjs's cache section.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { open, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const GIB = 1 << 30;
const CH = 64 << 10;
const N = Number(process.env.BENCH_MIB ?? 512) << 20;
const file = join(tmpdir(), `rp-cache-floor-${process.pid}.bin`);
const chunks = Array.from({ length: 64 }, () => randomBytes(CH));
const cpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};
async function measure(name, fn) {
  const res = [];
  for (let r = 0; r < 3; r++) {
    const c0 = cpu();
    await fn();
    res.push((cpu() - c0) / (N / GIB));
  }
  res.sort((a, b) => a - b);
  console.log(`${name.padEnd(44)} ${res[1].toFixed(2)} CPU-s/GiB`);
}
const batches = function* () {
  for (let i = 0; i < N / CH; i += 16) yield chunks.slice(i % 64, (i % 64) + 16);
};

await measure('sha256, 64 KiB chunks', async () => {
  const h = createHash('sha256');
  for (let i = 0; i < N / CH; i++) h.update(chunks[i % 64]);
  h.digest();
});
await measure('writev to a file, 1 MiB a call', async () => {
  const f = await open(file, 'w');
  for (const b of batches()) await f.writev(b);
  await f.close();
  await rm(file);
});
await measure('both', async () => {
  const h = createHash('sha256');
  const f = await open(file, 'w');
  for (const b of batches()) {
    for (const c of b) h.update(c);
    await f.writev(b);
  }
  h.digest();
  await f.close();
  await rm(file);
});

// The hit floor: the file (in the page cache after one read) to a socket, curl on the other end.
{
  const f = await open(file, 'w');
  for (const b of batches()) await f.writev(b);
  await f.close();
}
await measure('a stored file to a socket (a cache hit)', async () => {
  const server = createServer();
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const served = new Promise((resolve) =>
    server.once('connection', async (s) => {
      s.on('data', () => undefined);
      s.write(`HTTP/1.1 200 OK\r\ncontent-length: ${N}\r\nconnection: close\r\n\r\n`);
      const fh = await open(file);
      const spare = [];
      let pos = 0;
      while (pos < N) {
        const b = spare.pop() ?? Buffer.allocUnsafeSlow(1 << 20);
        const { bytesRead } = await fh.read(b, 0, b.length, pos);
        pos += bytesRead;
        const ok = s.write(b.subarray(0, bytesRead), () => spare.push(b));
        if (!ok) await new Promise((r) => s.once('drain', r));
      }
      await fh.close();
      s.end(resolve);
    }),
  );
  const curl = spawn('curl', ['-s', '-o', '/dev/null', `http://127.0.0.1:${server.address().port}/`], { stdio: 'ignore' });
  await served;
  await new Promise((r) => curl.once('exit', r));
  server.close();
});
await rm(file);
