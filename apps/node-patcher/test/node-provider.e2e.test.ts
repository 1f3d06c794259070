/**
 * Credential-provider mode on the real node of node.e2e.test.ts (EKS AL2023 layout, real systemd
 * and D-Bus; test/node/harness.ts). The patcher installs the single-file credential provider
 * (tools/build-credential-provider.mjs: it carries its own Node.js, as the EKS AMIs have none)
 * and its rules into kubelet's bin dir beside EKS's ecr-credential-provider, and joins kubelet's
 * existing provider config. The kubelet stand-in then does what kubelet does for a pod's image:
 * it runs the matching provider with a CredentialProviderRequest for that image and pulls the
 * image (manifest and blobs) from a real docker-registry (htpasswd) with the credentials the
 * provider answered. Stand-ins, where no real part can run here: kubelet (it also stands in for
 * the pod specs, from /etc/kubelet-standin/pod-images) and the pull itself (kubelet hands the
 * credentials to containerd; the stand-in does the registry requests containerd would).
 */
import { cpSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pusher, sampleImage, startRegistry, type TestRegistry } from '@registry-proxy/testing';
import { runPatch, runRevert } from '../src/run.js';
import { run as runCmd } from './node/bounded.js';
import { NODE_E2E, STEP_MS, TestNode } from './node/harness.js';

jest.setTimeout(4 * STEP_MS);
const maybe = NODE_E2E ? describe : describe.skip;
const t = new TestNode();
const PROVIDER = join(__dirname, '../../kubelet-image-service/dist-bin/registry-proxy-credential-provider');
const PROVIDER_CONFIG = '/etc/eks/image-credential-provider/config.json';
let registry: TestRegistry;
let dir: string;

if (NODE_E2E) {
  beforeAll(async () => {
    if (!existsSync(PROVIDER)) throw new Error(`${PROVIDER} is not built: run \`node tools/build-credential-provider.mjs\` (npm test does, before Jest)`);
    registry = await startRegistry({ puller: 'pull-secret' });
    await new Pusher(registry.url, 'puller', 'pull-secret').image('team/app', 'v1', sampleImage());
    dir = mkdtempSync(join(tmpdir(), 'rp-node-provider-'));
    await t.start();
  }, 20 * 60_000);
  afterAll(async () => {
    await t.stop();
    await registry?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, STEP_MS);
}

maybe('a real node: credential-provider mode', () => {
  it("kubelet runs the installed provider for a pod's image and pulls it with the credentials it answers; revert leaves `diff -r` empty", async () => {
    const image = `${registry.host}/team/app:v1`;
    t.write('/etc/kubelet-standin/pod-images', `${image}\n`);
    await t.node.systemctl('restart', 'kubelet.service');
    await t.kubeletUp();
    // Before: only EKS's ECR provider, which does not match this registry: the pull is refused.
    expect((await t.standin()).pulls).toEqual([{ image, by: '', manifest: 401 }]);

    const baseline = mkdtempSync(join(tmpdir(), 'rp-node-baseline-'));
    for (const d of ['etc/kubernetes', 'etc/eks', 'etc/systemd/system']) cpSync(join(t.root, d), join(baseline, d), { recursive: true, verbatimSymlinks: true });
    const rules = join(dir, 'rules.yaml');
    writeFileSync(rules, `backend: {type: cri, socket: /nonexistent}\ncredentials:\n  - hosts: ["${registry.host}"]\n    provider: {type: static, username: puller, password: pull-secret}\n`);
    const before = await t.standin();
    expect(await runPatch(t.run(), { mode: 'credential-provider', matchImages: [registry.host], providerBinary: PROVIDER, providerRules: rules, kubeletVersion: 'v1.31.0' })).toBe('patched');
    const after = await t.standin();
    expect(after.pid).not.toBe(before.pid);
    // Both providers registered (kubelet refuses to start when one's binary is missing) ...
    expect(after.providers.map((p) => p.name).sort()).toEqual(['ecr-credential-provider', 'registry-proxy-credential-provider']);
    expect(JSON.parse(t.file(PROVIDER_CONFIG)).providers.map((p: { name: string }) => p.name)).toContain('registry-proxy-credential-provider');
    // ... and the image pulled with what ours answered.
    expect(after.pulls).toEqual([{ image, by: 'registry-proxy-credential-provider', manifest: 200, blobs: [200, 200, 200, 200] }]);

    expect(await runRevert(t.run())).toBe('reverted');
    await t.kubeletUp();
    expect((await t.standin()).pulls).toEqual([{ image, by: '', manifest: 401 }]);
    for (const d of ['etc/kubernetes', 'etc/eks', 'etc/systemd/system']) {
      const r = await runCmd('diff', ['-r', '--no-dereference', join(baseline, d), join(t.root, d)], 30_000, `diff -r ${d}`);
      expect([d, r.stdout]).toEqual([d, '']);
    }
    rmSync(baseline, { recursive: true, force: true });
  });
});
