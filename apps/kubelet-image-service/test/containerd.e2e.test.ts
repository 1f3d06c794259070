/**
 * The image service with the CRI backend, forwarding to a real containerd's CRI plugin over its
 * socket, and the kubelet credential provider executable, both against the real proxy that
 * takes only instance identity.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import { requireCommands, startContainerd, type TestContainerd } from '@registry-proxy/testing';
import { parseConfig } from '../src/config.js';
import { createLogger } from '../src/logging.js';
import { startImageService, type RunningImageService } from '../src/service.js';
import { buildGoKubelet, goKubelet } from './go-kubelet.js';
import { KubeletImageClient } from './kubelet.js';
import { serviceConfig, startNodeWorld, type NodeWorld } from './world.js';

jest.setTimeout(120_000);
let w: NodeWorld;
let c: TestContainerd;
let service: RunningImageService;
let kubelet: KubeletImageClient;
const dir = mkdtempSync(join(tmpdir(), 'rp-kis-cri-'));
const socket = join(dir, 'image.sock');

beforeAll(async () => {
  await requireCommands('docker-registry', 'htpasswd', 'containerd', 'ctr');
  w = await startNodeWorld();
  c = await startContainerd();
  c.plainHttp(w.proxyHost);
  const sink = new Writable({ write: (_c, _e, cb) => cb() });
  service = await startImageService(parseConfig(serviceConfig(w, `{type: cri, socket: ${c.sock}}`, socket), 'test'), createLogger('debug', sink));
  kubelet = new KubeletImageClient(socket);
});
afterAll(async () => {
  kubelet?.close();
  await service?.close();
  await c?.stop();
  await w?.stop();
});

describe('kubelet image service, CRI backend (containerd)', () => {
  it("pulls into containerd's k8s.io namespace with the credentials it adds", async () => {
    const fs = await kubelet.imageFsInfo();
    expect(fs.imageFilesystems.length).toBeGreaterThan(0);
    const ref = `${w.proxyHost}/nodes/app:v1`;
    expect(await kubelet.imageStatus(ref)).toBeUndefined();
    const imageRef = await kubelet.pullImage(ref);
    expect(imageRef).toMatch(/^sha256:[0-9a-f]{64}$/);
    const status = await kubelet.imageStatus(ref);
    expect(status?.id).toBe(imageRef);
    expect(status?.size).toBeGreaterThan(0n);
    const ls = await c.ctr(['-n', 'k8s.io', 'images', 'ls', '-q']);
    expect(ls.stdout).toContain(ref);
    const denied = await kubelet.pullImage(`${w.proxyHost}/secret/app:v1`).catch((e: grpc.ServiceError) => e);
    expect([grpc.status.PERMISSION_DENIED, grpc.status.UNAUTHENTICATED]).toContain((denied as grpc.ServiceError).code);
    await kubelet.removeImage(ref);
    expect(await kubelet.imageStatus(ref)).toBeUndefined();
  });
});

describe('a real Go gRPC client (grpc-go, as kubelet) on the CRI backend', () => {
  it('gets every image RPC kubelet makes answered, dialling with the socket path as :authority (before kubernetes#123463) and with localhost (issue 13 defect 0)', async () => {
    const bin = await buildGoKubelet();
    const ref = `${w.proxyHost}/nodes/app:v2`;
    for (const authority of ['legacy', 'localhost'] as const) {
      const calls = await goKubelet(bin, socket, authority, ['version', 'imagefsinfo', `status=${ref}`, `pull=${ref}`, `status=${ref}`, 'list', `remove=${ref}`, `status=${ref}`]);
      expect(calls.map((c) => [c.call, c.code, c.message])).toEqual(calls.map((c) => [c.call, 0, undefined]));
      const [, fs, before, pull, after, list, , removed] = calls.map((c) => c.response as Record<string, unknown>);
      expect((fs?.['ImageFilesystems'] as unknown[]).length).toBeGreaterThan(0);
      expect(before?.['Image']).toBeNull();
      expect(pull?.['ImageRef']).toMatch(/^sha256:[0-9a-f]{64}$/);
      expect(after?.['Image']).toMatchObject({ Id: pull?.['ImageRef'] });
      expect((list?.['Images'] as { Id: string }[]).map((i) => i.Id)).toContain(pull?.['ImageRef']);
      expect(removed?.['Image']).toBeNull();
    }
  }, 300_000); // the first run compiles grpc-go
});

describe('the kubelet credential provider executable', () => {
  const run = (input: string, config: string) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      const child = execFile(process.execPath, [join(__dirname, '../dist/credential-provider.js'), '--config', config], (err, stdout, stderr) =>
        resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      );
      child.stdin?.end(input);
    });

  it('answers a CredentialProviderRequest with credentials the proxy accepts', async () => {
    const config = join(dir, 'provider.yaml');
    writeFileSync(config, serviceConfig(w, '{type: cri, socket: /nonexistent}', join(dir, 'unused.sock')));
    const r = await run(JSON.stringify({ apiVersion: 'credentialprovider.kubelet.k8s.io/v1', kind: 'CredentialProviderRequest', image: `${w.proxyHost}/nodes/app:v2` }), config);
    expect([r.code, r.stderr]).toEqual([0, '']);
    const res = JSON.parse(r.stdout) as { apiVersion: string; kind: string; cacheKeyType: string; cacheDuration: string; auth: Record<string, { username: string; password: string }> };
    expect(res).toMatchObject({ apiVersion: 'credentialprovider.kubelet.k8s.io/v1', kind: 'CredentialProviderResponse', cacheKeyType: 'Registry', cacheDuration: '1h' });
    const creds = res.auth[w.proxyHost];
    expect(creds?.username).toBe('aws-iid');
    // The proxy's token endpoint takes them.
    const token = await fetch(`http://${w.proxyHost}/token?service=registry-proxy&scope=repository:nodes/app:pull`, {
      headers: { authorization: `Basic ${Buffer.from(`${creds?.username}:${creds?.password}`).toString('base64')}` },
    });
    expect(token.status).toBe(200);
    // Another registry: no rule, no credentials.
    const other = await run(JSON.stringify({ apiVersion: 'credentialprovider.kubelet.k8s.io/v1', kind: 'CredentialProviderRequest', image: 'quay.io/org/app:1' }), config);
    expect(JSON.parse(other.stdout)).toMatchObject({ auth: {} });
    const bad = await run('{"kind":"Something"}', config);
    expect([bad.code, bad.stderr]).toEqual([1, expect.stringContaining('not a CredentialProviderRequest')]);
  });

  it('also as one executable file, for hosts without Node.js, giving the same answer', async () => {
    const exe = join(__dirname, '../dist-bin/registry-proxy-credential-provider');
    if (!existsSync(exe)) execFileSync(process.execPath, [join(__dirname, '../../../tools/build-credential-provider.mjs')], { stdio: 'ignore' });
    const config = join(dir, 'provider.yaml');
    const request = JSON.stringify({ apiVersion: 'credentialprovider.kubelet.k8s.io/v1', kind: 'CredentialProviderRequest', image: `${w.proxyHost}/nodes/app:v1` });
    // No PATH, no Node.js: the file carries its own runtime.
    const out = await new Promise<string>((resolve, reject) => {
      const child = execFile(exe, ['--config', config], { env: {} }, (err, stdout) => (err ? reject(err) : resolve(stdout)));
      child.stdin?.end(request);
    });
    const res = JSON.parse(out) as { auth: Record<string, { username: string; password: string }> };
    const creds = res.auth[w.proxyHost];
    expect(creds?.username).toBe('aws-iid');
    const token = await fetch(`http://${w.proxyHost}/token?service=registry-proxy&scope=repository:nodes/app:pull`, {
      headers: { authorization: `Basic ${Buffer.from(`${creds?.username}:${creds?.password}`).toString('base64')}` },
    });
    expect(token.status).toBe(200);
  });
});
