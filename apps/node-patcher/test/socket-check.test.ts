/**
 * image-service mode points kubelet at the socket only once the image service serves it (the
 * first install used to restart kubelet onto a socket nothing served yet). Checked against a
 * real HTTP/2 server, a socket left behind by a killed process, and a server that is not HTTP/2.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from '@registry-proxy/testing';
import { runPatch, SocketNotServedError } from '../src/run.js';
import { isServed, waitServed } from '../src/socket-check.js';
import { hostTree, snapshot } from './fixtures.js';
import { serveHttp2 } from './standins.js';

jest.setTimeout(30_000);
const dir = mkdtempSync(join(tmpdir(), 'rp-sock-'));

describe('isServed', () => {
  it('is false for a missing socket and true for an HTTP/2 server on it', async () => {
    const path = join(dir, 'a.sock');
    expect(await isServed(path)).toBe(false);
    const s = await serveHttp2(path);
    expect(await isServed(path)).toBe(true);
    await s.stop();
  });

  it('is false for a socket file left behind by a process killed with SIGKILL', async () => {
    const path = join(dir, 'stale.sock');
    const child = spawn(process.execPath, ['-e', `require('node:net').createServer().listen(${JSON.stringify(path)})`]);
    await waitFor('the child to bind', async () => existsSync(path), 10_000);
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    expect(existsSync(path)).toBe(true);
    expect(await isServed(path)).toBe(false);
  });

  it('is false for a server that is not HTTP/2', async () => {
    const path = join(dir, 'plain.sock');
    const conns: Socket[] = [];
    const server = createServer((c) => (conns.push(c), c.end('hello, this is not HTTP/2\n')));
    await new Promise<void>((r) => server.listen(path, r));
    expect(await isServed(path)).toBe(false);
    conns.forEach((c) => c.destroy());
    await new Promise((r) => server.close(r));
  });

  it('waitServed returns once the server comes up', async () => {
    const path = join(dir, 'later.sock');
    let s: { stop(): Promise<void> } | undefined;
    setTimeout(() => void serveHttp2(path).then((x) => (s = x)), 600);
    const t = Date.now();
    expect(await waitServed(path, 10_000, 100)).toBe(true);
    expect(Date.now() - t).toBeGreaterThanOrEqual(500);
    await s?.stop();
  });
});

describe('runPatch in image-service mode', () => {
  it('writes nothing and fails when the image service does not serve its socket', async () => {
    const root = hostTree('gke');
    const before = snapshot(root);
    const logs: string[] = [];
    const run = { root, busAddress: 'unix:path=/nonexistent', healthz: 'http://127.0.0.1:1/healthz', healthTimeoutMs: 1000, restart: true, socketWaitMs: 700, log: (m: string) => logs.push(m) };
    await expect(runPatch(run, { mode: 'image-service', kubeletVersion: 'v1.30.4' })).rejects.toThrow(SocketNotServedError);
    expect(snapshot(root)).toEqual(before);
    expect(readFileSync(join(root, 'home/kubernetes/kubelet-config.yaml'), 'utf8')).not.toContain('imageServiceEndpoint');
    expect(logs).toContain('waiting for the image service to serve its socket');
  });
});
