/**
 * The image service with the Docker Engine backend, on a real dockerd, driven by a
 * kubelet-like gRPC client over the unix socket. Pulls go through the real proxy, which takes
 * only instance identity: they work because the service adds the node's identity.
 */
import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import { requireCommands, startDockerd, type TestDockerd } from '@registry-proxy/testing';
import { parseConfig } from '../src/config.js';
import { createLogger } from '../src/logging.js';
import { startImageService, type RunningImageService } from '../src/service.js';
import { buildGoKubelet, goKubelet } from './go-kubelet.js';
import { KubeletImageClient } from './kubelet.js';
import { freePortWith403, serviceConfig, startNodeWorld, type NodeWorld } from './world.js';

jest.setTimeout(120_000);
let w: NodeWorld;
let d: TestDockerd;
let service: RunningImageService;
let kubelet: KubeletImageClient;
const logs: string[] = [];
const socket = join(mkdtempSync(join(tmpdir(), 'rp-kis-')), 'image.sock');

async function start(): Promise<RunningImageService> {
  const sink = new Writable({ write: (c: Buffer, _e, cb) => (logs.push(c.toString()), cb()) });
  return startImageService(parseConfig(serviceConfig(w, `{type: docker, socket: ${d.sock}}`, socket), 'test'), createLogger('debug', sink));
}

beforeAll(async () => {
  await requireCommands('docker-registry', 'htpasswd', 'dockerd', 'docker');
  // The proxy's port holds "403", as it did by chance when defect 10 showed up.
  w = await startNodeWorld({ proxyPort: await freePortWith403() });
  d = await startDockerd();
  service = await start();
  kubelet = new KubeletImageClient(socket);
});
afterAll(async () => {
  kubelet?.close();
  await service?.close();
  await d?.stop();
  await w?.stop();
});

const ref = (tag: string) => `${w.proxyHost}/nodes/app:${tag}`;

describe('kubelet image service, Docker Engine backend', () => {
  it('serves a 0600 unix socket and answers ImageFsInfo, as kubelet asks first', async () => {
    expect(statSync(socket).mode & 0o777).toBe(0o600);
    const fs = await kubelet.imageFsInfo();
    expect(fs.imageFilesystems[0]?.fsId?.mountpoint).toMatch(/data$/);
    expect(fs.imageFilesystems[0]?.timestamp).toBeGreaterThan(0);
  });

  it('pulls with the credentials it adds; the image is then in Docker with id, size and tags', async () => {
    expect(await kubelet.imageStatus(ref('v1'))).toBeUndefined(); // image: null, not an error
    // Docker alone cannot pull it: the proxy wants instance identity.
    const direct = await d.docker(['pull', ref('v1')]);
    expect(direct.code).not.toBe(0);
    const imageRef = await kubelet.pullImage(ref('v1'));
    expect(imageRef).toMatch(/^sha256:[0-9a-f]{64}$/);
    const status = await kubelet.imageStatus(ref('v1'));
    expect(status).toMatchObject({ id: imageRef, repoTags: [ref('v1')] });
    expect(status?.size).toBeGreaterThan(0);
    expect(status?.repoDigests).toContain(`${w.proxyHost}/nodes/app@${w.images.v1.digest}`);
    expect((await d.docker(['image', 'inspect', '--format', '{{.Id}}', ref('v1')])).stdout.trim()).toBe(imageRef);
    expect((await kubelet.listImages()).map((i) => i.id)).toContain(imageRef);
    const line = logs.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l['rpc'] === 'PullImage' && l['code'] === 0);
    expect(line).toMatchObject({ image: ref('v1'), credentials: 'rule 0 (aws-iid)' });
    expect(logs.join('')).not.toMatch(/"password"\s*:\s*"[^[]/);
  });

  it('tells a refused pull and a missing image apart in the gRPC status, whatever digits the registry port holds (issue 13 defect 10)', async () => {
    expect(w.proxyHost).toMatch(/:403\d\d$/);
    const forbidden = await kubelet.pullImage(`${w.proxyHost}/secret/app:v1`).catch((e: grpc.ServiceError) => e);
    expect([grpc.status.PERMISSION_DENIED, grpc.status.UNAUTHENTICATED]).toContain((forbidden as grpc.ServiceError).code);
    expect((forbidden as grpc.ServiceError).details).toContain('secret/app');
    const missing = await kubelet.pullImage(ref('no-such-tag')).catch((e: grpc.ServiceError) => e);
    expect((missing as grpc.ServiceError).code).toBe(grpc.status.NOT_FOUND);
    const bad = await kubelet.pullImage('UPPER/case').catch((e: grpc.ServiceError) => e);
    expect((bad as grpc.ServiceError).code).toBe(grpc.status.INVALID_ARGUMENT);
  });

  it('uses credentials kubelet sent itself when no rule overrides them', async () => {
    const withOwn = await kubelet.pullImage(`${w.proxyHost}/nodes/app:v2`, { username: 'kubelet-user', password: 'from-a-pull-secret' }).catch((e: grpc.ServiceError) => e);
    // The proxy knows no such user: kubelet's credentials were used, not the node's.
    expect((withOwn as grpc.ServiceError).code).toBe(grpc.status.UNAUTHENTICATED);
    const line = logs
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l['rpc'] === 'PullImage')
      .at(-1);
    expect(line?.['credentials']).toBe('from kubelet (rule 0 does not override)');
    expect(logs.join('')).not.toContain('from-a-pull-secret');
  });

  it("reports the user from the image's config as uid or username, and filters ListImages", async () => {
    await kubelet.pullImage(`${w.proxyHost}/nodes/uid:v1`);
    await kubelet.pullImage(`${w.proxyHost}/nodes/named:v1`);
    expect(await kubelet.imageStatus(`${w.proxyHost}/nodes/uid:v1`)).toMatchObject({ uid: { value: 1000n }, username: '' });
    expect(await kubelet.imageStatus(`${w.proxyHost}/nodes/named:v1`)).toMatchObject({ username: 'nobody' });
    expect((await kubelet.imageStatus(`${w.proxyHost}/nodes/named:v1`))?.uid).toBeUndefined();
    const filtered = await kubelet.listImages(`${w.proxyHost}/nodes/uid:v1`);
    expect(filtered.map((i) => i.repoTags).flat()).toEqual([`${w.proxyHost}/nodes/uid:v1`]);
  });

  it('removes images idempotently', async () => {
    await kubelet.removeImage(ref('v1'));
    expect(await kubelet.imageStatus(ref('v1'))).toBeUndefined();
    await kubelet.removeImage(ref('v1'));
  });

  it('answers a real Go gRPC client dialling as kubelet did before kubernetes#123463 (socket path as :authority) and as it does now (issue 13 defect 0)', async () => {
    const bin = await buildGoKubelet();
    for (const authority of ['legacy', 'localhost'] as const) {
      const calls = await goKubelet(bin, socket, authority, [
        'version',
        'imagefsinfo',
        `status=${ref('v2')}`,
        `pull=${ref('v2')}`,
        `status=${ref('v2')}`,
        `list=${ref('v2')}`,
        `remove=${ref('v2')}`,
        `status=${ref('v2')}`,
      ]);
      // Before the fix every call of the legacy dial failed: "RST_STREAM with error code: PROTOCOL_ERROR".
      expect(calls.map((c) => [c.call, c.code, c.message])).toEqual(calls.map((c) => [c.call, 0, undefined]));
      const [version, fs, before, pull, after, list, , removed] = calls.map((c) => c.response as Record<string, unknown>);
      expect(version).toMatchObject({ RuntimeApiVersion: 'v1' });
      expect((fs?.['ImageFilesystems'] as { FsId: { Mountpoint: string } }[])[0]?.FsId.Mountpoint).toMatch(/data$/);
      expect(before?.['Image']).toBeNull();
      expect(pull?.['ImageRef']).toMatch(/^sha256:[0-9a-f]{64}$/);
      expect(after?.['Image']).toMatchObject({ Id: pull?.['ImageRef'], RepoTags: [ref('v2')] });
      expect((list?.['Images'] as { Id: string }[]).map((i) => i.Id)).toEqual([pull?.['ImageRef']]);
      expect(removed?.['Image']).toBeNull();
    }
    expect(logs.join('')).toContain('rewrote the HTTP/2 :authority');
  }, 300_000); // the first run compiles grpc-go

  it('survives its own restart: later pulls work on the same socket', async () => {
    await service.close();
    service = await start();
    expect(await kubelet.pullImage(ref('v3'))).toMatch(/^sha256:/);
    const health = await fetch(`${service.healthUrl}/healthz`);
    expect(health.status).toBe(200);
    expect(await (await fetch(`${service.healthUrl}/metrics`)).text()).toContain('kubelet_image_service_rpcs_total{rpc="PullImage",code="0"}');
  });
});
