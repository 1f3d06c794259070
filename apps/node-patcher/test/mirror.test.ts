/**
 * Defect 2: mirror mode is anonymous-only (containerd sends a hosts.toml mirror no credentials).
 * Before writing hosts.toml the patcher pulls a probe manifest through the mirror as containerd
 * would, without credentials, and refuses a mirror that cannot serve it.
 */
import { runPatch } from '../src/run.js';
import { hostTree, snapshot } from './fixtures.js';
import { startRegistry } from './standins.js';

const run = (root: string, probes: Record<string, string>) => ({
  root,
  busAddress: 'unix:path=/nonexistent',
  healthz: 'http://127.0.0.1:1/healthz',
  healthTimeoutMs: 1000,
  restart: true,
  log: () => undefined,
  mirrorProbes: probes,
});

describe('mirror mode checks an anonymous pull first', () => {
  it('patches when the mirror serves the probe image without credentials', async () => {
    const reg = await startRegistry({ anonymous: true });
    try {
      const root = hostTree('eks-al2023');
      expect(await runPatch(run(root, { 'docker.io': 'library/pause:3.9' }), { mode: 'mirror', mirrors: { 'docker.io': reg.url } })).toBe('patched');
      expect(reg.requests).toEqual([
        'HEAD /v2/library/pause/manifests/3.9?ns=docker.io anon',
        'GET /token?service=registry-proxy&scope=repository%3Alibrary%2Fpause%3Apull anon',
        'HEAD /v2/library/pause/manifests/3.9?ns=docker.io auth',
      ]);
      // Patched already: no probe on the next run (the node keeps working when the proxy is down).
      await reg.stop();
      expect(await runPatch(run(root, { 'docker.io': 'library/pause:3.9' }), { mode: 'mirror', mirrors: { 'docker.io': reg.url } })).toBe('unchanged');
    } finally {
      await reg.stop().catch(() => undefined);
    }
  });

  it.each([
    ['a mirror that requires credentials', { anonymous: false }, 'library/pause:3.9', /gives no anonymous token .*use credential-provider mode/],
    ['a probe image the mirror does not serve', { anonymous: true }, 'library/nginx:1', /anonymous pull of docker.io\/library\/nginx:1 through the mirror .* got HTTP 404/],
  ])('refuses %s and leaves the node untouched', async (_n, o, probe, message) => {
    const reg = await startRegistry(o);
    try {
      const root = hostTree('eks-al2');
      const before = snapshot(root);
      await expect(runPatch(run(root, { 'docker.io': probe }), { mode: 'mirror', mirrors: { 'docker.io': reg.url } })).rejects.toThrow(message);
      expect(snapshot(root)).toEqual(before);
    } finally {
      await reg.stop();
    }
  });

  it('refuses without a probe image, and when the mirror does not answer', async () => {
    await expect(runPatch(run(hostTree('kubeadm'), {}), { mode: 'mirror', mirrors: { 'docker.io': 'http://127.0.0.1:1' } })).rejects.toThrow(/needs a probe image for docker.io/);
    await expect(runPatch(run(hostTree('kubeadm'), { 'docker.io': 'library/pause:3.9' }), { mode: 'mirror', mirrors: { 'docker.io': 'http://127.0.0.1:1' } })).rejects.toThrow(/did not answer/);
  });
});
