// What the bench scripts share: free loopback ports, the children they start (each logging to a
// file in the run's folder, all stopped together), waiting for a server, a process's CPU from
// /proc, and the environment the proxy's image sets. Loopback only.
import { spawn } from 'node:child_process';
import { openSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export const root = join(import.meta.dirname, '../..');

/** apps/proxy/Dockerfile's ENV lines: the proxy runs in the benches as its image runs it. */
export const imageEnv = Object.fromEntries([...readFileSync(join(root, 'apps/proxy/Dockerfile'), 'utf8').matchAll(/^ENV (.+)$/gm)].flatMap((m) => m[1].split(/\s+/).map((kv) => kv.split('='))));

/** A loopback port nothing listens on now. */
export async function freePort() {
  const s = createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const p = s.address().port;
  await new Promise((r) => s.close(r));
  return p;
}

/** Until `ok(status)` for a GET of `url`; up to a minute (a loaded machine starts servers slowly). */
export async function waitHttp(url, ok = (s) => s < 500) {
  for (let i = 0; i < 1200; i++) {
    try {
      if (ok((await fetch(url)).status)) return;
    } catch {}
    await sleep(50);
  }
  throw new Error(`not up: ${url}`);
}

/** utime and stime of a process in seconds, and its minor page faults so far. */
export function cpuSplit(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const x = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return [Number(x[11]) / 100, Number(x[12]) / 100, Number(x[7])];
}

/** utime + stime of a process (all its threads) in seconds. */
export function cpu(pid) {
  const [user, sys] = cpuSplit(pid);
  return user + sys;
}

/** The children of one bench run: started with their output in `dir/<log>`, stopped together (also on Ctrl-C). */
export function children(dir) {
  const all = [];
  const stop = async () => {
    for (const c of all) c.kill('SIGTERM');
    await Promise.all(all.map((c) => (c.exitCode === null ? new Promise((r) => c.once('exit', r)) : null)));
  };
  process.on('SIGINT', () => stop().then(() => process.exit(130)));
  return {
    start(cmd, args, log, env = process.env) {
      const fd = openSync(join(dir, log), 'a');
      const c = spawn(cmd, args, { stdio: ['ignore', fd, fd], env });
      all.push(c);
      return c;
    },
    stop,
  };
}
