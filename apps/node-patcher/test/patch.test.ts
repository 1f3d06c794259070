/** Patch / revert round trips on host trees of each layout, the guard script, and refusals. */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { patch, revert, status } from '../src/patcher.js';
import { hostTree, snapshot, type LayoutName } from './fixtures.js';

const LAYOUTS: LayoutName[] = ['gke', 'eks-al2', 'eks-al2023', 'kubeadm'];
const read = (root: string, p: string) => readFileSync(join(root, p), 'utf8');

describe.each(LAYOUTS)('%s', (layout) => {
  it.each([
    ['image-service (kubelet 1.30: the config field)', { mode: 'image-service' as const, kubeletVersion: 'v1.30.4' }],
    ['credential-provider', { mode: 'credential-provider' as const, matchImages: ['registry.example.com'], providerArgs: ['--config', '/etc/registry-proxy/image-service.yaml'] }],
    ['mirror', { mode: 'mirror' as const, mirrors: { 'docker.io': 'https://registry.example.com', 'quay.io': 'https://registry.example.com' } }],
  ])('%s: patches, a second patch is a no-op, revert is byte for byte', (_name, opts) => {
    const root = hostTree(layout);
    const before = snapshot(root);
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
});

describe('what each mode writes', () => {
  it('image-service sets imageServiceEndpoint in the config (comments kept), with the boot guard', () => {
    const root = hostTree('gke');
    patch(root, { mode: 'image-service', kubeletVersion: 'v1.29.1' });
    const cfg = read(root, '/home/kubernetes/kubelet-config.yaml');
    expect(parseYaml(cfg)).toMatchObject({ kind: 'KubeletConfiguration', imageServiceEndpoint: 'unix:///run/registry-proxy/image-service.sock' });
    expect(cfg).toContain('# cgroups as the node');
    expect(read(root, '/etc/systemd/system/kubelet.service.d/05-registry-proxy-guard.conf')).toContain('ExecStartPre=-/bin/sh /etc/registry-proxy/kubelet-guard.sh');
    const json = hostTree('eks-al2023');
    patch(json, { mode: 'image-service', kubeletVersion: 'v1.31.0' });
    expect(JSON.parse(read(json, '/etc/kubernetes/kubelet/config.json')).imageServiceEndpoint).toBe('unix:///run/registry-proxy/image-service.sock');
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

  it("credential-provider joins EKS's existing plugin configuration instead of replacing it", () => {
    const root = hostTree('eks-al2');
    const before = snapshot(root);
    patch(root, { mode: 'credential-provider', matchImages: ['registry.example.com'] });
    const cfg = JSON.parse(read(root, '/etc/eks/image-credential-provider/config.json')) as { providers: Array<{ name: string }> };
    expect(cfg.providers.map((p) => p.name)).toEqual(['ecr-credential-provider', 'registry-proxy-credential-provider']);
    // No flags of its own: kubelet already names a config and a bin dir.
    expect(snapshot(root)['/etc/systemd/system/kubelet.service.d/30-kubelet-extra-args.conf']).toBeUndefined();
    expect(read(root, '/var/lib/registry-proxy/node-patcher/provider-bin-dir')).toBe('/etc/eks/image-credential-provider\n');
    revert(root);
    expect(snapshot(root)).toEqual(before);
  });

  it('credential-provider installs the plugin executable (0755) into the bin dir kubelet uses, and revert removes it', () => {
    const bin = join(hostTree('kubeadm'), 'plugin');
    writeFileSync(bin, '#!/bin/sh\necho plugin\n');
    const eks = hostTree('eks-al2');
    const before = snapshot(eks);
    patch(eks, { mode: 'credential-provider', matchImages: ['registry.example.com'], providerBinary: bin });
    expect(snapshot(eks)['/etc/eks/image-credential-provider/registry-proxy-credential-provider']).toBe(`755 ${Buffer.from('#!/bin/sh\necho plugin\n').toString('base64')}`);
    revert(eks);
    expect(snapshot(eks)).toEqual(before);
    const gke = hostTree('gke');
    const rules = join(hostTree('kubeadm'), 'rules.yaml');
    writeFileSync(rules, 'credentials: []\n');
    patch(gke, { mode: 'credential-provider', matchImages: ['registry.example.com'], providerBinary: bin, providerRules: rules });
    expect(snapshot(gke)['/opt/registry-proxy/bin/registry-proxy-credential-provider']).toMatch(/^755 /);
    expect(snapshot(gke)['/etc/registry-proxy/credential-provider-rules.yaml']).toMatch(/^600 /);
    expect(parseYaml(read(gke, '/etc/registry-proxy/credential-provider.yaml'))).toMatchObject({ providers: [{ args: ['--config', '/etc/registry-proxy/credential-provider-rules.yaml'] }] });
    expect(() => patch(hostTree('gke'), { mode: 'credential-provider', matchImages: ['r.example.com'], providerBinary: '/nonexistent/plugin' })).toThrow(/credential provider binary \/nonexistent\/plugin: ENOENT/);
  });

  it('credential-provider elsewhere sets both flags and writes its own plugin configuration', () => {
    const root = hostTree('gke');
    patch(root, { mode: 'credential-provider', matchImages: ['registry.example.com', '*.registry.example.com'] });
    expect(read(root, '/etc/default/kubelet')).toContain('--image-credential-provider-config=/etc/registry-proxy/credential-provider.yaml --image-credential-provider-bin-dir=/opt/registry-proxy/bin"');
    expect(parseYaml(read(root, '/etc/registry-proxy/credential-provider.yaml'))).toMatchObject({ kind: 'CredentialProviderConfig', providers: [{ name: 'registry-proxy-credential-provider', matchImages: ['registry.example.com', '*.registry.example.com'] }] });
  });

  it('mirror writes hosts.toml that falls back to the registry, and needs containerd to read certs.d', () => {
    const root = hostTree('eks-al2023');
    patch(root, { mode: 'mirror', mirrors: { 'docker.io': 'https://registry.example.com' } });
    expect(read(root, '/etc/containerd/certs.d/docker.io/hosts.toml')).toContain('server = "https://registry-1.docker.io"\n\n[host."https://registry.example.com"]\n  capabilities = ["pull", "resolve"]');
    expect(status(root)).toMatchObject({ state: { restart: false } });
    const noCertsD = hostTree('kubeadm', { '/etc/containerd/config.toml': 'version = 2\n' });
    expect(() => patch(noCertsD, { mode: 'mirror', mirrors: { 'docker.io': 'https://r.example.com' } })).toThrow(/containerd does not read \/etc\/containerd\/certs.d/);
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

  it('refuses to patch over, or revert, files someone changed since (unless forced)', () => {
    const root = hostTree('kubeadm');
    const before = snapshot(root);
    patch(root, { mode: 'image-service', kubeletVersion: 'v1.30.0' });
    writeFileSync(join(root, '/var/lib/kubelet/config.yaml'), 'kind: KubeletConfiguration\nedited: by hand\n');
    expect(status(root)).toMatchObject({ drifted: ['/var/lib/kubelet/config.yaml'] });
    expect(() => patch(root, { mode: 'image-service', kubeletVersion: 'v1.30.0' })).toThrow(/changed since the patch/);
    expect(() => revert(root)).toThrow(/use --force/);
    revert(root, { force: true });
    expect(snapshot(root)).toEqual(before);
  });
});

describe('the boot guard', () => {
  /** Runs the guard as the host would, chrooted into the tree with busybox as /bin/sh. */
  function runGuard(root: string): void {
    mkdirSync(join(root, 'bin'), { recursive: true });
    copyFileSync('/bin/busybox', join(root, 'bin/busybox'));
    for (const a of ['sh', 'cp', 'rm', 'echo']) symlinkSync('busybox', join(root, 'bin', a));
    execFileSync('chroot', [root, '/bin/sh', '/etc/registry-proxy/kubelet-guard.sh'], { stdio: 'pipe' });
    execFileSync('rm', ['-rf', join(root, 'bin')]);
  }

  it('puts the original kubelet files back when the socket is missing at kubelet start', () => {
    const root = hostTree('gke');
    const before = snapshot(root);
    patch(root, { mode: 'image-service', kubeletVersion: 'v1.30.0' });
    runGuard(root);
    expect(snapshot(root)).toEqual(before);
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
    expect(snapshot(root)).toEqual(patched);
  });
});
