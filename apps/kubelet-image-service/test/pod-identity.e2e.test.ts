/**
 * Per-pod identity (KEP-4412): kubelet 1.33+ hands the credential provider the pod's
 * service-account token; the provider answers with it as the password of `kubernetes`, and the
 * real proxy verifies it against the cluster's service-account issuer (a stand-in for
 * kube-apiserver's discovery and JWKS: no API server runs here) and grants by namespace and
 * service account. The pulls are real: a grpc-go client plays kubelet and sends the provider's
 * credentials in PullImage to the image service, whose CRI backend has a real containerd pull
 * through the real proxy from a real docker-registry.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { spawn, type ChildProcess } from 'node:child_process';
import bcrypt from 'bcryptjs';
import { decodeJwt } from 'jose';
import { Pusher, freePort, requireCommands, sampleImage, startContainerd, startRegistry, waitFor, type TestContainerd, type TestRegistry } from '@registry-proxy/testing';
import { parseConfig } from '../src/config.js';
import { createLogger } from '../src/logging.js';
import { startImageService, type RunningImageService } from '../src/service.js';
import { buildGoKubelet, goKubelet } from './go-kubelet.js';
import { startServiceAccountIssuer, type TestServiceAccountIssuer } from './service-account-issuer.js';

jest.setTimeout(300_000);
const dir = mkdtempSync(join(tmpdir(), 'rp-pod-identity-'));
const AUDIENCE = 'registry-proxy';
let sa: TestServiceAccountIssuer;
let registry: TestRegistry;
let proxy: ChildProcess;
let proxyHost: string;
let c: TestContainerd;
let service: RunningImageService;
let bin: string;
const logs: string[] = [];

/** The image service and credential provider configuration; `nodeFallback` as the test says. */
const config = (nodeFallback: boolean) => `socket: ${join(dir, 'image.sock')}
backend: {type: cri, socket: ${c.sock}}
health: {host: 127.0.0.1, port: 0}
log: {level: debug}
credentials:
  - hosts: ["${proxyHost}"]
    provider: {type: static, username: node-1, password: node-1-pw}
    serviceAccountToken: {username: kubernetes, nodeFallback: ${nodeFallback}}
`;

beforeAll(async () => {
  await requireCommands('docker-registry', 'htpasswd', 'containerd', 'ctr', 'go');
  bin = await buildGoKubelet();
  sa = await startServiceAccountIssuer();
  registry = await startRegistry({ up: 'up-pw' });
  const push = new Pusher(registry.url, 'up', 'up-pw');
  await push.image('team-a/app', 'v1', sampleImage('amd64'));
  await push.image('base/tool', 'v1', sampleImage('amd64'));
  const port = await freePort();
  proxyHost = `127.0.0.1:${port}`;
  writeFileSync(
    join(dir, 'proxy.yaml'),
    `listen: {host: 127.0.0.1, port: ${port}}
log: {level: warn}
auth:
  - type: static
    users: [{username: node-1, passwordHash: "${bcrypt.hashSync('node-1-pw', 4)}"}]
  - type: oidc
    issuers:
      - issuer: "${sa.issuer}"
        audiences: [${AUDIENCE}]
        usernames: [kubernetes]
        allowInsecure: true
        labelClaims: {k8s.namespace: kubernetes.io.namespace, k8s.serviceaccount: kubernetes.io.serviceaccount.name}
rules:
  - {labels: {k8s.namespace: team-a, k8s.serviceaccount: puller}, repository: "team-a/**", actions: [pull]}
  - {account: [node-1], repository: "base/**", actions: [pull]}
upstreams: [{name: local, url: "${registry.url}", credentials: {type: static, username: up, password: up-pw}}]
`,
  );
  proxy = spawn(process.execPath, [join(__dirname, '../../proxy/dist/main.js'), '--config', join(dir, 'proxy.yaml')], { stdio: 'ignore' });
  await waitFor('registry-proxy', async () => (await fetch(`http://${proxyHost}/healthz`)).status === 200);
  c = await startContainerd();
  c.plainHttp(proxyHost);
  const sink = new Writable({ write: (chunk: Buffer, _e, cb) => (logs.push(chunk.toString()), cb()) });
  service = await startImageService(parseConfig(config(false), 'test'), createLogger('debug', sink));
});
afterAll(async () => {
  await service?.close();
  await c?.stop();
  if (proxy && proxy.exitCode === null) {
    await new Promise<void>((r) => {
      proxy.once('exit', () => r());
      proxy.kill('SIGTERM');
    });
  }
  await registry?.stop();
  await sa?.close();
});

/** Runs the credential provider executable as kubelet does: request on stdin, response on stdout. */
function provider(request: Record<string, unknown>, nodeFallback = false): Promise<{ code: number; stdout: string; stderr: string }> {
  const file = join(dir, `provider-${nodeFallback}.yaml`);
  writeFileSync(file, config(nodeFallback));
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [join(__dirname, '../dist/credential-provider.js'), '--config', file], (err, stdout, stderr) => resolve({ code: err ? 1 : 0, stdout, stderr }));
    child.stdin?.end(JSON.stringify({ apiVersion: 'credentialprovider.kubelet.k8s.io/v1', kind: 'CredentialProviderRequest', ...request }));
  });
}

interface ProviderAnswer {
  cacheKeyType: string;
  cacheDuration: string;
  serviceAccountTokenCacheType?: string;
  auth: Record<string, { username: string; password: string }>;
}

/** Kubelet's side: the provider's answer for the pod, then PullImage with it over the CRI. */
async function podPulls(image: string, pod: { namespace: string; token?: string }, nodeFallback = false) {
  const r = await provider({ image: `${proxyHost}/${image}`, ...(pod.token ? { serviceAccountToken: pod.token, serviceAccountAnnotations: {} } : {}) }, nodeFallback);
  expect([r.code, r.stderr]).toEqual([0, '']);
  const answer = JSON.parse(r.stdout) as ProviderAnswer;
  const creds = answer.auth[proxyHost];
  const flags = ['-namespace', pod.namespace, ...(creds ? ['-username', creds.username, '-password', creds.password] : [])];
  const [pull] = await goKubelet(bin, join(dir, 'image.sock'), 'legacy', [`pull=${proxyHost}/${image}`], flags);
  return { answer, pull: pull as { code: number; message?: string; response?: { ImageRef?: string } } };
}

const podToken = (namespace: string, serviceAccount = 'puller') => sa.token({ namespace, serviceAccount, pod: `${namespace}-web-0`, audience: AUDIENCE, ttlSeconds: 600 });

describe('per-pod identity through the kubelet credential provider (KEP-4412)', () => {
  it("a pod in namespace team-a pulls team-a's image; a pod in team-b on the same node is refused", async () => {
    const tokenA = await podToken('team-a');
    const a = await podPulls('team-a/app:v1', { namespace: 'team-a', token: tokenA });
    // The pod's own token, cached by kubelet for that pod only and no longer than it lives.
    expect(a.answer).toMatchObject({ cacheKeyType: 'Registry', serviceAccountTokenCacheType: 'Pod', auth: { [proxyHost]: { username: 'kubernetes', password: tokenA } } });
    expect(Number(a.answer.cacheDuration.replace(/s$/, ''))).toBeGreaterThan(400);
    expect(Number(a.answer.cacheDuration.replace(/s$/, ''))).toBeLessThanOrEqual(540);
    expect([a.pull.code, a.pull.message]).toEqual([0, undefined]);
    expect(a.pull.response?.ImageRef).toMatch(/^sha256:/);
    expect((await c.ctr(['-n', 'k8s.io', 'images', 'ls', '-q'])).stdout).toContain(`${proxyHost}/team-a/app:v1`);
    await goKubelet(bin, join(dir, 'image.sock'), 'localhost', [`remove=${proxyHost}/team-a/app:v1`]);

    const tokenB = await podToken('team-b');
    const b = await podPulls('team-a/app:v1', { namespace: 'team-b', token: tokenB });
    expect(b.answer.auth[proxyHost]?.password).toBe(tokenB);
    expect([7, 16]).toContain(b.pull.code); // PERMISSION_DENIED or UNAUTHENTICATED: refused
    // Team-b's token is genuine: the proxy signs it in, and grants it nothing on team-a.
    const basic = (t: string) => ({ authorization: `Basic ${Buffer.from(`kubernetes:${t}`).toString('base64')}` });
    const grant = async (t: string) => {
      const res = await fetch(`http://${proxyHost}/token?service=registry-proxy&scope=repository:team-a/app:pull`, { headers: basic(t) });
      return { status: res.status, access: res.status === 200 ? decodeJwt(((await res.json()) as { token: string }).token)['access'] : undefined };
    };
    expect(await grant(tokenA)).toEqual({ status: 200, access: [{ type: 'repository', name: 'team-a/app', actions: ['pull'], upstream: 'local' }] });
    expect(await grant(tokenB)).toEqual({ status: 200, access: [] });
    // Another service account in team-a is not the one the rule names.
    expect((await grant(await podToken('team-a', 'default'))).access).toEqual([]);
    // A token the cluster's issuer did not sign does not sign in at all.
    expect((await grant(await sa.forged({ namespace: 'team-a', serviceAccount: 'puller', audience: AUDIENCE }))).status).toBe(401);
    // Nothing logged the tokens.
    expect(logs.join('')).not.toContain(tokenA.split('.')[2]);
  });

  it('a pod without a token (a static pod) gets the node credentials only where nodeFallback is set', async () => {
    const without = await podPulls('base/tool:v1', { namespace: 'kube-system' });
    expect(without.answer.auth).toEqual({});
    expect([7, 16]).toContain(without.pull.code);
    expect(logs.join('')).toContain('pod identity only');

    const fallback = await podPulls('base/tool:v1', { namespace: 'kube-system' }, true);
    expect(fallback.answer.auth[proxyHost]?.username).toBe('node-1');
    expect(fallback.answer.serviceAccountTokenCacheType).toBeUndefined();
    expect([fallback.pull.code, fallback.pull.message]).toEqual([0, undefined]);
    // With a token, the pod's identity is used even where the node could fall back: team-b's
    // pod still cannot reach team-a's image through the node.
    const b = await podPulls('team-a/app:v1', { namespace: 'team-b', token: await podToken('team-b') }, true);
    expect(b.answer.auth[proxyHost]?.username).toBe('kubernetes');
    expect([7, 16]).toContain(b.pull.code);
  });
});
