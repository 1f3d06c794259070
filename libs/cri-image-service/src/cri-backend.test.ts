import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { ImageBackend } from './backend.js';
import { CriBackend } from './cri-backend.js';
import { ImageServiceClient, type AuthConfig, type ImageSpec, type PodSandboxConfig } from './gen/runtime/v1/api.js';
import { CriImageServer } from './server.js';

/**
 * Issue 13 defect 8: the CRI backend sent every call with empty annotations and no
 * runtime_handler. The runtime here is a recording CRI image service on a real unix socket
 * (containerd 1.6, which Debian ships, ignores both fields, so it cannot show the difference):
 * kubelet's client -> the image service (CRI backend) -> the recording runtime.
 */
class Recording implements ImageBackend {
  readonly name = 'recording';
  readonly seen: { rpc: string; spec: ImageSpec | undefined; auth?: AuthConfig | undefined; sandbox?: PodSandboxConfig | undefined }[] = [];
  async listImages(filter: ImageSpec | undefined) {
    this.seen.push({ rpc: 'ListImages', spec: filter });
    return [];
  }
  async imageStatus(spec: ImageSpec) {
    this.seen.push({ rpc: 'ImageStatus', spec });
    return undefined;
  }
  async pullImage(spec: ImageSpec, auth: AuthConfig | undefined, sandbox: PodSandboxConfig | undefined) {
    this.seen.push({ rpc: 'PullImage', spec, auth, sandbox });
    return `sha256:${'1'.repeat(64)}`;
  }
  async removeImage(spec: ImageSpec) {
    this.seen.push({ rpc: 'RemoveImage', spec });
  }
  async imageFsInfo() {
    return { imageFilesystems: [], containerFilesystems: [] };
  }
  async close() {}
}

const dir = mkdtempSync(join(tmpdir(), 'rp-cri-backend-'));
const runtime = new Recording();
const runtimeServer = new CriImageServer({ backend: runtime });
const service = new CriImageServer({
  backend: new CriBackend({ socketPath: join(dir, 'runtime.sock') }),
  credentials: async () => ({ auth: { username: 'node', password: 'pw', auth: '', serverAddress: '', identityToken: '', registryToken: '' }, decision: 'test' }),
});
let kubelet: ImageServiceClient;

beforeAll(async () => {
  await runtimeServer.listen(join(dir, 'runtime.sock'));
  await service.listen(join(dir, 'service.sock'));
  kubelet = new ImageServiceClient(`unix://${join(dir, 'service.sock')}`, grpc.credentials.createInsecure());
});
afterAll(async () => {
  kubelet.close();
  await service.close(1000);
  await runtimeServer.close(1000);
});

const call = <Res>(fn: (cb: (e: grpc.ServiceError | null, r: Res) => void) => unknown) => new Promise<Res>((resolve, reject) => fn((e, r) => (e ? reject(e) : resolve(r))));

describe('the CRI backend forwards kubelet ImageSpec as it came (issue 13 defect 8)', () => {
  it('annotations, runtime_handler and user_specified_image reach the runtime on every image call', async () => {
    const spec: ImageSpec = {
      image: 'registry.example.com/team/app@sha256:' + 'a'.repeat(64),
      annotations: { 'io.kubernetes.cri.image.platform': 'linux/arm64', 'kubernetes.io/runtime-handler': 'kata' },
      userSpecifiedImage: 'registry.example.com/team/app:1',
      runtimeHandler: 'kata',
    };
    const sandbox: PodSandboxConfig = { metadata: { name: 'web-0', uid: 'u-1', namespace: 'team-a', attempt: 0 }, labels: {}, annotations: {} };
    await call((cb) => kubelet.imageStatus({ image: spec, verbose: false }, cb));
    await call((cb) => kubelet.pullImage({ image: spec, sandboxConfig: sandbox }, cb));
    await call((cb) => kubelet.listImages({ filter: { image: spec } }, cb));
    await call((cb) => kubelet.removeImage({ image: spec }, cb));
    expect(runtime.seen.map((s) => [s.rpc, s.spec])).toEqual([
      ['ImageStatus', spec],
      ['PullImage', spec],
      ['ListImages', spec],
      ['RemoveImage', spec],
    ]);
    const pull = runtime.seen[1];
    expect(pull?.sandbox?.metadata?.namespace).toBe('team-a');
    expect(pull?.auth?.username).toBe('node'); // the credentials the service added
  });
});
