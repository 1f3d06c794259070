/**
 * Issue 13, defect 7: a DaemonSet rolling update (maxSurge: 1, maxUnavailable: 0) runs the new
 * pod beside the old one on the same host folder. Two real service processes (the built
 * command, as the DaemonSet runs it) on one socket path: the second takes the socket over while
 * the first still runs, the first's exit leaves the second's socket in place, and the second
 * gets the health port once the first lets it go (both use the host network).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, lstatSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getGlobalDispatcher } from 'undici';
import { waitFor } from '@registry-proxy/testing';
import { KubeletImageClient } from './kubelet.js';

jest.setTimeout(60_000);
const MAIN = join(__dirname, '../dist/main.js');
const dir = mkdtempSync(join(tmpdir(), 'rp-kis-handover-'));

afterAll(async () => {
  await getGlobalDispatcher().close();
});

interface Service {
  readonly child: ChildProcess;
  out(): string;
  /** How many RPCs this process logged. */
  rpcs(): number;
  readonly exited: Promise<number | null>;
}

function start(cfg: string): Service {
  const child = spawn(process.execPath, [MAIN, '--config', cfg], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return { child, out: () => out, rpcs: () => out.split('\n').filter((l) => l.includes('"rpc":"ImageFsInfo"')).length, exited };
}

/** One ImageFsInfo as kubelet sends it; the stand-in runtime fails it, but the service answers and logs it. */
async function call(socket: string): Promise<void> {
  const c = new KubeletImageClient(socket);
  try {
    await c.imageFsInfo().catch(() => undefined);
  } finally {
    c.close();
  }
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

it('the new process takes the socket over; the old one never unlinks a socket it no longer owns', async () => {
  const runtime = createServer((s) => s.destroy()); // a runtime socket that answers nothing
  const runtimeSock = join(dir, 'runtime.sock');
  await new Promise<void>((r) => runtime.listen(runtimeSock, r));
  const socket = join(dir, 'image-service.sock');
  const port = await freePort();
  const cfg = join(dir, 'config.yaml');
  writeFileSync(cfg, `socket: ${socket}\nbackend: {type: cri, socket: ${runtimeSock}}\nhealth: {port: ${port}}\n`);
  const old = start(cfg);
  let next: Service | undefined;
  try {
    await waitFor('the old pod to listen', async () => old.out().includes('kubelet image service listening'), 15_000);
    await call(socket);
    await waitFor('the old pod to log the call', async () => old.rpcs() === 1, 5000);

    next = start(cfg);
    const n = next;
    await waitFor('the new pod to listen', async () => n.out().includes('kubelet image service listening'), 15_000);
    expect(n.out()).toContain('health port in use');
    const inode = lstatSync(socket).ino;
    await call(socket);
    await waitFor('the new pod to log the call', async () => n.rpcs() === 1, 5000);
    expect(old.rpcs()).toBe(1); // kubelet's next call reached the new pod, not the old

    old.child.kill('SIGTERM');
    expect(await old.exited).toBe(0);
    expect(old.out()).toContain('socket taken over by another process');
    expect(lstatSync(socket).ino).toBe(inode); // still the new pod's socket
    await call(socket);
    await waitFor('the new pod to log the call', async () => n.rpcs() === 2, 5000);
    // The health port, let go by the old pod, is the new pod's now.
    await waitFor('the new pod to bind the health port', async () => (await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined))?.status === 200, 10_000);
  } finally {
    old.child.kill('SIGTERM');
    next?.child.kill('SIGTERM');
    runtime.close();
  }
  expect(await next.exited).toBe(0);
  expect(existsSync(socket)).toBe(false); // the last owner removes it
});
