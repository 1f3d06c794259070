import { createServer } from 'node:net';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IidStrategy } from '@registry-proxy/auth-iid';
import { createAzureTestCa, startAzureImds } from '@registry-proxy/testing';
import { checkNode, parseConfig } from './config.js';
import { CACHE_DURATION, CredentialRules } from './credentials.js';
import { answer, tokenCacheDuration } from './provider-response.js';

const dir = mkdtempSync(join(tmpdir(), 'rp-kis-cfg-'));

describe('image service configuration', () => {
  it('fills defaults and names bad keys', () => {
    const c = parseConfig('backend: {type: cri}\n', 't');
    expect(c).toMatchObject({ socket: '/run/registry-proxy/image-service.sock', socketMode: 0o600, backend: { type: 'cri', socket: '/run/containerd/containerd.sock' }, credentials: [] });
    expect(() => parseConfig('backend: {type: podman}\n', 't')).toThrow(/t: backend.type/);
    expect(() => parseConfig('backend: {type: cri}\nsocketMode: "0999"\n', 't')).toThrow(/socketMode: an octal mode/);
    expect(() => parseConfig('backend: {type: cri}\ncredentials: [{hosts: ["a b"], provider: {type: static, username: u, password: p}}]\n', 't')).toThrow(/credentials.0.hosts.0/);
  });

  it('refuses a backend that cannot work on this node, saying which runtime to use', async () => {
    expect(() => checkNode(parseConfig(`backend: {type: docker, socket: ${join(dir, 'missing.sock')}}\n`, 't'))).toThrow(/no Docker Engine socket .* use backend type cri/);
    expect(() => checkNode(parseConfig(`socket: /run/x.sock\nbackend: {type: cri, socket: /run/x.sock}\n`, 't'))).toThrow(/is the image service's own socket/);
    const sock = join(dir, 'runtime.sock');
    const s = createServer();
    await new Promise<void>((r) => s.listen(sock, r));
    try {
      expect(() => checkNode(parseConfig(`backend: {type: cri, socket: ${sock}}\n`, 't'))).not.toThrow();
    } finally {
      s.close();
    }
  });

  it('matches registry hosts by glob; the first rule wins; kubelet credentials win unless overridden', async () => {
    const rules = new CredentialRules(
      parseConfig(
        `backend: {type: cri}
credentials:
  - hosts: ["*.gcr.io", "europe-docker.pkg.dev"]
    provider: {type: static, username: gcp-user, password: gcp-pw}
  - hosts: [registry.example.com]
    provider: {type: static, username: corp, password: corp-pw}
    override: true
`,
        't',
      ),
    );
    expect((await rules.decide('eu.gcr.io/p/app:1', undefined)).decision).toBe('rule 0 (static)');
    expect((await rules.decide('europe-docker.pkg.dev/p/r/app:1', undefined)).auth?.username).toBe('gcp-user');
    expect((await rules.decide('gcr.io/p/app:1', undefined)).decision).toBe('none'); // *.gcr.io needs a label before gcr.io
    const kubelet = { username: 'k', password: 'kp', auth: '', serverAddress: '', identityToken: '', registryToken: '' };
    expect((await rules.decide('eu.gcr.io/p/app:1', kubelet)).auth?.username).toBe('k');
    expect((await rules.decide('registry.example.com/team/app:1', kubelet)).auth?.username).toBe('corp');
    expect((await rules.decide('nginx', undefined)).decision).toBe('none');
  });
});

describe('azure-iid credentials', () => {
  // IMDS is a stand-in here (libs/testing azure.ts): Microsoft's format, signed by a test CA.
  it("hands kubelet the node's attested document from IMDS, which the proxy's verifier accepts", async () => {
    const ca = createAzureTestCa();
    const vm = { vmId: 'b1c2d3e4-0000-4000-8000-000000000001', subscriptionId: '8d10da13-8125-4ba9-a717-bf7490507b3d' };
    const imds = await startAzureImds(vm, ca.signer());
    try {
      const rules = new CredentialRules(
        parseConfig(`backend: {type: cri}\ncredentials:\n  - hosts: [registry.example.com]\n    provider: {type: azure-iid, imdsUrl: "${imds.url}", nonceFile: ${join(dir, 'azure-nonce')}}\n`, 't'),
      );
      const d = await rules.decide('registry.example.com/nodes/pause:v1', undefined);
      expect([d.decision, d.auth?.username]).toEqual(['rule 0 (azure-iid)', 'azure-iid']);
      const verdict = await new IidStrategy({ azure: { roots: [ca.rootPem], intermediates: [ca.intermediatePem], subscriptions: [vm.subscriptionId] } }).verify('azure-iid', d.auth?.password ?? '');
      expect(verdict).toMatchObject({ result: 'allow', identity: { subject: `azure/${vm.subscriptionId}/${vm.vmId}` } });
      expect(CACHE_DURATION['azure-iid']).toBe('5m');
    } finally {
      await imds.close();
    }
  }, 30_000);
});

describe('per-pod identity settings (KEP-4412)', () => {
  it('needs a provider, a serviceAccountToken, or both; a node fallback needs the node provider', () => {
    expect(() => parseConfig('backend: {type: cri}\ncredentials: [{hosts: [r.example]}]\n', 't')).toThrow(/credentials.0.provider: a rule needs a provider, serviceAccountToken, or both/);
    expect(() => parseConfig('backend: {type: cri}\ncredentials: [{hosts: [r.example], serviceAccountToken: {nodeFallback: true}}]\n', 't')).toThrow(
      /credentials.0.serviceAccountToken.nodeFallback: falls back/,
    );
    expect(parseConfig('backend: {type: cri}\ncredentials: [{hosts: [r.example], serviceAccountToken: {}}]\n', 't').credentials[0]?.serviceAccountToken).toEqual({
      username: 'kubernetes',
      nodeFallback: false,
    });
  });

  it('keeps a pod token no longer than it lives, and answers a token request kubelet will use', async () => {
    const jwt = (exp: unknown) => `e30.${Buffer.from(JSON.stringify({ exp })).toString('base64url')}.sig`;
    const now = 1_700_000_000_000;
    expect(tokenCacheDuration(jwt(now / 1000 + 600), now)).toBe('540s');
    expect(tokenCacheDuration(jwt(now / 1000 + 86_400), now)).toBe('3600s');
    expect(tokenCacheDuration(jwt(now / 1000 + 30), now)).toBe('0s');
    expect(tokenCacheDuration(jwt('soon'), now)).toBe('0s');
    expect(tokenCacheDuration('not-a-jwt', now)).toBe('0s');
    const config = parseConfig('backend: {type: cri}\ncredentials: [{hosts: [r.example], serviceAccountToken: {}}]\n', 't');
    const req = (extra: object) => JSON.stringify({ apiVersion: 'credentialprovider.kubelet.k8s.io/v1', kind: 'CredentialProviderRequest', image: 'r.example/a:1', ...extra });
    // No rule for the registry, but a token came: kubelet 1.34 needs serviceAccountTokenCacheType.
    expect(
      await answer(config, JSON.stringify({ apiVersion: 'credentialprovider.kubelet.k8s.io/v1', kind: 'CredentialProviderRequest', image: 'other.example/a:1', serviceAccountToken: jwt(1) })),
    ).toMatchObject({ serviceAccountTokenCacheType: 'ServiceAccount', auth: {} });
    expect(await answer(config, req({}))).toEqual({ apiVersion: 'credentialprovider.kubelet.k8s.io/v1', kind: 'CredentialProviderResponse', cacheKeyType: 'Registry', cacheDuration: '5m', auth: {} });
    await expect(answer(config, req({ serviceAccountToken: 7 }))).rejects.toThrow(/serviceAccountToken: not a string/);
  });
});

describe('the built service, run with plain node', () => {
  it('starts from dist/main.js and refuses a configuration it cannot use, with exit code 2 or 1', async () => {
    const { spawnSync } = await import('node:child_process');
    const main = join(__dirname, '../dist/main.js');
    const missing = spawnSync(process.execPath, [main, '--config', join(dir, 'nope.yaml')], { encoding: 'utf8' });
    expect([missing.status, missing.stderr]).toEqual([2, expect.stringContaining('cannot read configuration file')]);
    const { writeFileSync } = await import('node:fs');
    writeFileSync(join(dir, 'bad-backend.yaml'), `socket: ${join(dir, 's.sock')}\nbackend: {type: docker, socket: ${join(dir, 'no-docker.sock')}}\n`);
    const bad = spawnSync(process.execPath, [main, '--config', join(dir, 'bad-backend.yaml')], { encoding: 'utf8' });
    expect(bad.status).toBe(1);
    expect(bad.stdout).toContain('no Docker Engine socket');
  });
});
