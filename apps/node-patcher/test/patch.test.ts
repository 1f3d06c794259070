/** Patch / revert round trips on host trees of each layout, the guard script, and refusals. */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { underMounts } from '../src/layouts.js';
import { patch, revert, status } from '../src/patcher.js';
import { containerdRegistry } from '../src/plan.js';
import { CONTAINERD_GKE, hostTree, snapshot, type LayoutName } from './fixtures.js';

const LAYOUTS: LayoutName[] = ['gke', 'eks-al2', 'eks-al2023', 'kubeadm'];
const read = (root: string, p: string) => readFileSync(join(root, p), 'utf8');

describe.each(LAYOUTS)('%s', (layout) => {
  it.each([
    ['image-service (kubelet 1.30: the config field)', { mode: 'image-service' as const, kubeletVersion: 'v1.30.4' }],
    ['credential-provider', { mode: 'credential-provider' as const, matchImages: ['registry.example.com'], providerArgs: ['--config', '/etc/registry-proxy/image-service.yaml'] }],
    ['mirror', { mode: 'mirror' as const, mirrors: { 'docker.io': 'https://registry.example.com', 'quay.io': 'https://registry.example.com' } }],
  ])('%s: patches, a second patch is a no-op, revert leaves `diff -r` empty (defect 9: folders too)', (_name, opts) => {
    const root = hostTree(layout);
    const before = snapshot(root);
    if (layout === 'gke' && opts.mode === 'mirror') {
      // GKE's containerd uses registry.mirrors, not hosts.toml folders (defect 1).
      expect(() => patch(root, opts)).toThrow(/configures registry.mirrors \(as GKE does\).*use credential-provider mode/);
      expect(snapshot(root)).toEqual(before);
      return;
    }
    const first = patch(root, opts);
    expect(first.changed).toBe(true);
    const patched = snapshot(root);
    expect(patched).not.toEqual(before);
    expect(patch(root, opts).changed).toBe(false);
    expect(snapshot(root)).toEqual(patched);
    expect(status(root)).toMatchObject({ patched: true, drifted: [] });
    expect(revert(root).reverted).toBe(true);
    expect(snapshot(root)).toEqual(before);
    expect(revert(root).reverted).toBe(false);
  });

  it('every file and folder it writes lies under the host folders the chart mounts (defect 4)', () => {
    for (const opts of [
      { mode: 'image-service' as const, kubeletVersion: 'v1.30.4' },
      { mode: 'credential-provider' as const, matchImages: ['r.example.com'], providerBinary: PLUGIN, providerRules: RULES },
      ...(layout === 'gke' ? [] : [{ mode: 'mirror' as const, mirrors: { 'docker.io': 'https://r.example.com' } }]),
    ]) {
      const root = hostTree(layout);
      const before = snapshot(root);
      patch(root, opts);
      const written = Object.keys(snapshot(root)).filter((p) => snapshot(root)[p] !== before[p]);
      expect(written.filter((p) => !underMounts(p.replace(/\/$/, '')))).toEqual([]);
    }
  });
});

const PLUGIN = join(hostTree('kubeadm'), 'plugin');
writeFileSync(PLUGIN, '#!/bin/sh\necho plugin\n');
const RULES = join(hostTree('kubeadm'), 'rules.yaml');
writeFileSync(RULES, 'credentials: []\n');

describe('what each mode writes', () => {
  it('image-service sets imageServiceEndpoint with a one-line edit: every other byte kept (defect 9)', () => {
    const root = hostTree('kubeadm');
    const before = read(root, '/var/lib/kubelet/config.yaml');
    patch(root, { mode: 'image-service', kubeletVersion: 'v1.29.1' });
    const cfg = read(root, '/var/lib/kubelet/config.yaml');
    // kubeadm's lists are not indented (`clusterDNS:\n- 10.96.0.10`); a re-serialisation indents them.
    expect(cfg).toBe(`${before}imageServiceEndpoint: "unix:///run/registry-proxy/image-service.sock"\n`);
    expect(read(root, '/etc/systemd/system/kubelet.service.d/05-registry-proxy-guard.conf')).toContain('ExecStartPre=-/bin/sh /etc/registry-proxy/kubelet-guard.sh');
    const gke = hostTree('gke');
    patch(gke, { mode: 'image-service', kubeletVersion: 'v1.29.1' });
    expect(read(gke, '/home/kubernetes/kubelet-config.yaml')).toContain('# cgroups as the node');
    expect(read(gke, '/etc/systemd/system/kubelet.service.d/05-registry-proxy-guard.conf')).toContain('ExecStartPre=-/bin/sh /home/kubernetes/registry-proxy/kubelet-guard.sh');
    const json = hostTree('eks-al2023');
    const jsonBefore = read(json, '/etc/kubernetes/kubelet/config.json');
    patch(json, { mode: 'image-service', kubeletVersion: 'v1.31.0' });
    // nodeadm's 4-space JSON without a final newline: one member added, the rest untouched.
    expect(read(json, '/etc/kubernetes/kubelet/config.json')).toBe(jsonBefore.replace('{\n    "kind"', '{\n    "imageServiceEndpoint": "unix:///run/registry-proxy/image-service.sock",\n    "kind"'));
  });

  it('image-service writes the guard before the kubelet file (a killed patcher never leaves kubelet on the socket unguarded)', () => {
    const root = hostTree('kubeadm');
    const r = patch(root, { mode: 'image-service', kubeletVersion: 'v1.30.1' });
    expect(r.state.files.map((f) => f.path)).toEqual(['/etc/registry-proxy/kubelet-guard.sh', '/etc/systemd/system/kubelet.service.d/05-registry-proxy-guard.conf', '/var/lib/kubelet/config.yaml']);
  });

  it('image-service on an older kubelet uses the flag where the guard can undo it, and refuses elsewhere', () => {
    const root = hostTree('kubeadm');
    patch(root, { mode: 'image-service', kubeletVersion: 'v1.26.9' });
    expect(read(root, '/var/lib/kubelet/kubeadm-flags.env')).toBe(
      'KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock --pod-infra-container-image=registry.k8s.io/pause:3.9 --image-service-endpoint=unix:///run/registry-proxy/image-service.sock"\n',
    );
    expect(() => patch(hostTree('eks-al2'), { mode: 'image-service', kubeletVersion: 'v1.26.9' })).toThrow(/use credential-provider or mirror mode/);
    expect(() => patch(hostTree('gke'), { mode: 'image-service' })).toThrow(/needs the kubelet version/);
  });

  it.each(['eks-al2', 'eks-al2023'] as const)("credential-provider on %s joins the AMI's plugin configuration and bin dir /etc/eks/image-credential-provider (defect 4)", (layout) => {
    const root = hostTree(layout);
    const before = snapshot(root);
    patch(root, { mode: 'credential-provider', matchImages: ['registry.example.com'], providerBinary: PLUGIN });
    const cfg = JSON.parse(read(root, '/etc/eks/image-credential-provider/config.json')) as { providers: Array<{ name: string }> };
    expect(cfg.providers.map((p) => p.name)).toEqual(['ecr-credential-provider', 'registry-proxy-credential-provider']);
    expect(snapshot(root)['/etc/eks/image-credential-provider/registry-proxy-credential-provider']).toBe(`755 ${Buffer.from('#!/bin/sh\necho plugin\n').toString('base64')}`);
    // No flags of its own: kubelet already names a config and a bin dir.
    expect(snapshot(root)['/etc/systemd/system/kubelet.service.d/30-kubelet-extra-args.conf']).toBeUndefined();
    revert(root);
    expect(snapshot(root)).toEqual(before);
  });

  it('credential-provider on GKE joins cri-auth-config.yaml (YAML formatting kept) and installs into /home/kubernetes/bin, never /opt (defect 4)', () => {
    const gke = hostTree('gke');
    const before = snapshot(gke);
    patch(gke, { mode: 'credential-provider', matchImages: ['registry.example.com'], providerBinary: PLUGIN, providerRules: RULES });
    expect(snapshot(gke)['/home/kubernetes/bin/registry-proxy-credential-provider']).toMatch(/^755 /);
    expect(snapshot(gke)['/home/kubernetes/registry-proxy/credential-provider-rules.yaml']).toMatch(/^600 /);
    const auth = read(gke, '/home/kubernetes/cri-auth-config.yaml');
    expect(auth).toContain('providers:\n- name: auth-provider-gcp\n'); // GKE's list style kept
    expect(parseYaml(auth)).toMatchObject({
      providers: [{ name: 'auth-provider-gcp' }, { name: 'registry-proxy-credential-provider', args: ['--config', '/home/kubernetes/registry-proxy/credential-provider-rules.yaml'] }],
    });
    expect(Object.keys(snapshot(gke)).filter((p) => p.startsWith('/opt'))).toEqual([]);
    revert(gke);
    expect(snapshot(gke)).toEqual(before);
    expect(() => patch(hostTree('gke'), { mode: 'credential-provider', matchImages: ['r.example.com'], providerBinary: '/nonexistent/plugin' })).toThrow(
      /credential provider binary \/nonexistent\/plugin: ENOENT/,
    );
  });

  it('credential-provider elsewhere sets both flags and writes its own plugin configuration', () => {
    const root = hostTree('kubeadm');
    patch(root, { mode: 'credential-provider', matchImages: ['registry.example.com', '*.registry.example.com'] });
    expect(read(root, '/var/lib/kubelet/kubeadm-flags.env')).toContain(
      '--image-credential-provider-config=/etc/registry-proxy/credential-provider.yaml --image-credential-provider-bin-dir=/var/lib/registry-proxy/bin"',
    );
    expect(parseYaml(read(root, '/etc/registry-proxy/credential-provider.yaml'))).toMatchObject({
      kind: 'CredentialProviderConfig',
      providers: [{ name: 'registry-proxy-credential-provider', matchImages: ['registry.example.com', '*.registry.example.com'] }],
    });
  });

  it("mirror on EKS: containerd's config_path is a list; hosts.toml goes to its first folder (defect 1)", () => {
    for (const layout of ['eks-al2', 'eks-al2023'] as const) {
      const root = hostTree(layout);
      patch(root, { mode: 'mirror', mirrors: { 'docker.io': 'https://registry.example.com' } });
      expect(read(root, '/etc/containerd/certs.d/docker.io/hosts.toml')).toContain(
        'server = "https://registry-1.docker.io"\n\n[host."https://registry.example.com"]\n  capabilities = ["pull", "resolve"]',
      );
      expect(status(root)).toMatchObject({ state: { restart: false } });
    }
    expect(containerdRegistry('[plugins."io.containerd.cri.v1.images".registry]\nconfig_path = "/etc/containerd/certs.d:/etc/docker/certs.d"\n')).toEqual({
      configPaths: ['/etc/containerd/certs.d', '/etc/docker/certs.d'],
    });
    expect(containerdRegistry(CONTAINERD_GKE)).toBe('mirrors');
    const noCertsD = hostTree('kubeadm', { '/etc/containerd/config.toml': 'version = 2\n' });
    expect(() => patch(noCertsD, { mode: 'mirror', mirrors: { 'docker.io': 'https://r.example.com' } })).toThrow(/containerd does not read a certs.d folder/);
  });
});

describe('refusals leave the node untouched', () => {
  it.each([
    ['an unknown layout', {}, /unknown node layout/],
    ['a corrupt kubelet config', { '/var/lib/kubelet/config.yaml': 'kind: [unclosed\n' }, /not valid YAML/],
    ['a config that is not a KubeletConfiguration', { '/var/lib/kubelet/config.yaml': 'kind: Pod\n' }, /not a KubeletConfiguration/],
    ['flags set twice', { '/var/lib/kubelet/kubeadm-flags.env': 'KUBELET_KUBEADM_ARGS="--a=1"\nKUBELET_KUBEADM_ARGS="--b=2"\n' }, /exactly once/],
  ])('%s', (_name, extra, message) => {
    const root = _name === 'an unknown layout' ? hostTree('kubeadm', {}) : hostTree('kubeadm', extra as Record<string, string>);
    if (_name === 'an unknown layout') execFileSync('rm', ['-rf', join(root, 'var'), join(root, 'usr')]);
    const before = snapshot(root);
    expect(() => patch(root, { mode: 'image-service', kubeletVersion: 'v1.30.0' })).toThrow(message);
    expect(snapshot(root)).toEqual(before);
  });
});

describe('provider rewrites (defect 3)', () => {
  /** What nodeadm does on every AL2023 boot: config.json and the environment written anew. */
  function nodeadmBoot(root: string, nodeIp: string): void {
    const cfg = read(root, '/etc/kubernetes/kubelet/config.json').replace(/\n {4}"imageServiceEndpoint": [^\n]*/, '');
    writeFileSync(join(root, '/etc/kubernetes/kubelet/config.json'), cfg.replace('"172.20.0.10"', '"172.20.0.10",\n        "172.20.0.11"'));
    // Flag order comes from a Go map: it differs between boots.
    writeFileSync(
      join(root, '/etc/eks/kubelet/environment'),
      `NODEADM_KUBELET_ARGS=--config=/etc/kubernetes/kubelet/config.json --node-ip=${nodeIp} --kubeconfig=/var/lib/kubelet/kubeconfig --image-credential-provider-bin-dir=/etc/eks/image-credential-provider --image-credential-provider-config=/etc/eks/image-credential-provider/config.json`,
    );
    writeFileSync(join(root, '/etc/eks/image-credential-provider/config.json'), read(hostTree('eks-al2023'), '/etc/eks/image-credential-provider/config.json'));
  }

  it.each([
    ['image-service', { mode: 'image-service' as const, kubeletVersion: 'v1.31.0' }],
    ['credential-provider', { mode: 'credential-provider' as const, matchImages: ['registry.example.com'], providerBinary: PLUGIN }],
  ])('%s: a rewrite at boot is the new baseline: patched again without an error, revert gives the rewritten files', (_n, opts) => {
    const root = hostTree('eks-al2023');
    const before = snapshot(root);
    patch(root, opts);
    nodeadmBoot(root, '10.0.1.99');
    // The baseline: the original tree with nodeadm's three files as nodeadm wrote them now.
    const now = snapshot(root);
    const rewritten = ['/etc/kubernetes/kubelet/config.json', '/etc/eks/kubelet/environment', '/etc/eks/image-credential-provider/config.json'];
    const baseline = { ...before, ...Object.fromEntries(rewritten.map((p) => [p, now[p]])) };
    const again = patch(root, opts);
    expect(again).toMatchObject({ changed: true, rebased: { rewritten: expect.arrayContaining([expect.stringMatching(/config.json$/)]) } });
    expect(patch(root, opts).changed).toBe(false);
    if (opts.mode === 'image-service')
      expect(JSON.parse(read(root, '/etc/kubernetes/kubelet/config.json'))).toMatchObject({
        imageServiceEndpoint: 'unix:///run/registry-proxy/image-service.sock',
        clusterDNS: ['172.20.0.10', '172.20.0.11'],
      });
    else expect(JSON.parse(read(root, '/etc/eks/image-credential-provider/config.json')).providers).toHaveLength(2);
    revert(root);
    expect(snapshot(root)).toEqual(baseline);
  });

  it('revert leaves a file rewritten since the patch as it is (--force puts the backup back)', () => {
    const root = hostTree('kubeadm');
    const before = snapshot(root);
    patch(root, { mode: 'image-service', kubeletVersion: 'v1.30.0' });
    writeFileSync(join(root, '/var/lib/kubelet/config.yaml'), 'kind: KubeletConfiguration\nedited: by hand\n');
    expect(status(root)).toMatchObject({ drifted: ['/var/lib/kubelet/config.yaml'] });
    expect(revert(root)).toMatchObject({ reverted: true, kept: ['/var/lib/kubelet/config.yaml'] });
    expect(read(root, '/var/lib/kubelet/config.yaml')).toBe('kind: KubeletConfiguration\nedited: by hand\n');
    const again = hostTree('kubeadm');
    patch(again, { mode: 'image-service', kubeletVersion: 'v1.30.0' });
    writeFileSync(join(again, '/var/lib/kubelet/config.yaml'), 'kind: KubeletConfiguration\nedited: by hand\n');
    revert(again, { force: true });
    expect(snapshot(again)).toEqual(before);
  });

  it('other settings re-apply from the baseline instead of crash-looping', () => {
    const root = hostTree('kubeadm');
    const before = snapshot(root);
    patch(root, { mode: 'credential-provider', matchImages: ['a.example.com'] });
    expect(patch(root, { mode: 'credential-provider', matchImages: ['b.example.com'] })).toMatchObject({ changed: true, rebased: { rewritten: [] } });
    expect(read(root, '/etc/registry-proxy/credential-provider.yaml')).toContain('b.example.com');
    revert(root);
    expect(snapshot(root)).toEqual(before);
  });
});

describe('the boot guard', () => {
  /** Runs the guard as the host would, chrooted into the tree with busybox as /bin/sh. */
  function runGuard(root: string, guard = '/home/kubernetes/registry-proxy/kubelet-guard.sh'): void {
    mkdirSync(join(root, 'bin'), { recursive: true });
    copyFileSync('/bin/busybox', join(root, 'bin/busybox'));
    for (const a of ['sh', 'cp', 'rm', 'echo', 'cat', 'rmdir', 'sha256sum']) symlinkSync('busybox', join(root, 'bin', a));
    execFileSync('chroot', [root, '/bin/sh', guard], { stdio: 'pipe' });
    execFileSync('rm', ['-rf', join(root, 'bin')]);
  }

  it('puts the original kubelet files back when the socket is missing at kubelet start', () => {
    const root = hostTree('gke');
    const before = snapshot(root);
    patch(root, { mode: 'image-service', kubeletVersion: 'v1.30.0' });
    runGuard(root);
    expect(snapshot(root)).toEqual(before);
  });

  it('leaves a file the provider rewrote at boot as the provider wrote it (defect 3), and still removes itself', () => {
    const root = hostTree('eks-al2023');
    const before = snapshot(root);
    patch(root, { mode: 'image-service', kubeletVersion: 'v1.31.0' });
    // nodeadm at boot, before kubelet: its own config.json, without the patch.
    const fresh = read(hostTree('eks-al2023'), '/etc/kubernetes/kubelet/config.json').replace('"cluster.local"', '"cluster.example"');
    writeFileSync(join(root, '/etc/kubernetes/kubelet/config.json'), fresh);
    runGuard(root, '/etc/registry-proxy/kubelet-guard.sh');
    expect(read(root, '/etc/kubernetes/kubelet/config.json')).toBe(fresh);
    const after = snapshot(root);
    expect({ ...after, '/etc/kubernetes/kubelet/config.json': before['/etc/kubernetes/kubelet/config.json'] }).toEqual(before);
  });

  it('leaves the patch alone when the image service is there', async () => {
    const root = hostTree('gke');
    patch(root, { mode: 'image-service', kubeletVersion: 'v1.30.0' });
    const patched = snapshot(root);
    mkdirSync(join(root, 'run/registry-proxy'), { recursive: true });
    const server = createServer();
    await new Promise<void>((r) => server.listen(join(root, 'run/registry-proxy/image-service.sock'), r));
    try {
      runGuard(root);
    } finally {
      server.close();
    }
    const after = snapshot(root);
    delete after['/run/registry-proxy/']; // the socket's folder, made by this test
    expect(after).toEqual(patched);
  });
});
