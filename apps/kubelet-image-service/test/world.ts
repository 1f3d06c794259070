import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  Pusher,
  awsDocument,
  createIidSigner,
  freePort,
  makeImage,
  sampleImage,
  startImds,
  startRegistry,
  waitFor,
  type Image,
  type TestMetadataServer,
  type TestRegistry,
} from '@registry-proxy/testing';

/**
 * A real docker-registry behind the real proxy (its built main.js, as users run it) that
 * accepts only AWS instance identity, and an IMDSv2 stand-in that hands out this node's
 * identity. A pull through the proxy succeeds only with credentials the image service adds.
 */
export interface NodeWorld {
  readonly registry: TestRegistry;
  readonly proxyHost: string;
  readonly imds: TestMetadataServer;
  readonly images: { v1: Image; v2: Image; v3: Image; uid: Image; named: Image };
  readonly dir: string;
  stop(): Promise<void>;
}

/**
 * A free loopback port from 40300-40399. The failure messages runtimes give echo the registry's
 * host:port, and a port with "403" in it once made a missing tag read as "denied" (issue 13
 * defect 10, seen only when the random port happened to hold those digits).
 */
export async function freePortWith403(): Promise<number> {
  for (let port = 40300; port < 40400; port++) {
    const srv = createServer();
    const ok = await new Promise<boolean>((resolve) => {
      srv.once('error', () => resolve(false));
      srv.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (ok) {
      await new Promise<void>((r) => srv.close(() => r()));
      return port;
    }
  }
  throw new Error('no free port in 40300-40399');
}

export async function startNodeWorld(opts: { proxyPort?: number } = {}): Promise<NodeWorld> {
  const dir = mkdtempSync(join(tmpdir(), 'rp-node-'));
  const registry = await startRegistry({ up: 'up-pw' });
  const push = new Pusher(registry.url, 'up', 'up-pw');
  const images = {
    v1: sampleImage('amd64'),
    v2: sampleImage('amd64'),
    v3: sampleImage('amd64'),
    uid: makeImage([{ 'a.txt': 'uid' }], 'amd64', { User: '1000:1000' }),
    named: makeImage([{ 'b.txt': 'named' }], 'amd64', { User: 'nobody' }),
  };
  await push.image('nodes/uid', 'v1', images.uid);
  await push.image('nodes/named', 'v1', images.named);
  await push.image('nodes/app', 'v1', images.v1);
  await push.image('nodes/app', 'v2', images.v2);
  await push.image('nodes/app', 'v3', images.v3);
  await push.image('secret/app', 'v1', images.v1);
  const signer = createIidSigner('eu-west-1');
  const imds = await startImds(awsDocument({ instanceId: 'i-0feedfacecafe0001' }), signer);
  const port = opts.proxyPort ?? (await freePort());
  writeFileSync(join(dir, 'region.pem'), signer.certPem);
  writeFileSync(
    join(dir, 'proxy.yaml'),
    `listen: {host: 127.0.0.1, port: ${port}}
log: {level: warn}
auth: [{type: iid, aws: {certificates: [{file: ${join(dir, 'region.pem')}}], accounts: ["123456789012"]}}]
rules: [{labels: {aws.accountId: "123456789012"}, repository: "nodes/**", actions: [pull]}]
upstreams: [{name: local, url: "${registry.url}", credentials: {type: static, username: up, password: up-pw}}]
`,
  );
  const proxy: ChildProcess = spawn(process.execPath, [join(__dirname, '../../proxy/dist/main.js'), '--config', join(dir, 'proxy.yaml')], { stdio: 'ignore' });
  await waitFor('registry-proxy', async () => (await fetch(`http://127.0.0.1:${port}/healthz`)).status === 200);
  return {
    registry,
    proxyHost: `127.0.0.1:${port}`,
    imds,
    images,
    dir,
    async stop() {
      await new Promise<void>((r) => {
        if (proxy.exitCode !== null) return r();
        proxy.once('exit', () => r());
        proxy.kill('SIGTERM');
      });
      await imds.close();
      await registry.stop();
    },
  };
}

/** The image service's configuration for this world, with the given backend. */
export function serviceConfig(w: NodeWorld, backend: string, socket: string, extra = ''): string {
  return `socket: ${socket}
backend: ${backend}
health: {host: 127.0.0.1, port: 0}
log: {level: debug}
credentials:
  - hosts: ["${w.proxyHost}"]
    provider: {type: aws-iid, imdsUrl: "${w.imds.url}", nonceFile: ${join(w.dir, 'iid-nonce')}}
${extra}`;
}
