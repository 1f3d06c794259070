/** The built CLI, run with plain node as the init container runs it. */
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hostTree, snapshot } from './fixtures.js';
import { startRegistry } from './standins.js';

jest.setTimeout(30_000);
let registry: Awaited<ReturnType<typeof startRegistry>>;
beforeAll(async () => {
  registry = await startRegistry({ anonymous: true });
});
afterAll(() => registry.stop());

const cli = (...args: string[]) =>
  new Promise<{ code: number; lines: Array<Record<string, unknown>> }>((resolve) => {
    execFile(process.execPath, [join(__dirname, '../dist/main.js'), ...args], (err, stdout) =>
      resolve({
        code: err ? Number((err as { code?: number }).code ?? 1) : 0,
        lines: stdout
          .trim()
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as Record<string, unknown>),
      }),
    );
  });

describe('node-patcher CLI', () => {
  it('patches, reports and reverts a mirror without touching kubelet', async () => {
    const root = hostTree('eks-al2023');
    const before = snapshot(root);
    expect((await cli('status', '--root', root)).lines[0]).toMatchObject({ msg: 'not patched' });
    const p = await cli('patch', '--root', root, '--mode', 'mirror', '--mirror', `docker.io=${registry.url}`, '--mirror-probe', 'docker.io=library/pause:3.9', '--no-restart');
    expect(p.lines[0]).toMatchObject({ msg: 'anonymous pull through the mirror works', registry: 'docker.io' });
    expect([p.code, p.lines[1]]).toEqual([0, expect.objectContaining({ msg: 'patched', layout: 'eks-al2023', files: ['/etc/containerd/certs.d/docker.io/hosts.toml'] })]);
    expect((await cli('status', '--root', root)).lines[0]).toMatchObject({ msg: 'patched', drifted: [] });
    expect((await cli('revert', '--root', root, '--no-restart')).code).toBe(0);
    expect(snapshot(root)).toEqual(before);
  });

  it('reads mirrors from a config folder, as the chart mounts it', async () => {
    const root = hostTree('kubeadm');
    const dir = join(root, 'cfg');
    mkdirSync(dir);
    writeFileSync(join(dir, 'mirrors.json'), JSON.stringify({ 'quay.io': registry.url }));
    writeFileSync(join(dir, 'mirror-probes.json'), JSON.stringify({ 'quay.io': 'library/pause:3.9' }));
    const p = await cli('patch', '--root', root, '--mode', 'mirror', '--config-dir', dir, '--no-restart');
    expect(p.lines[1]).toMatchObject({ msg: 'patched', files: ['/etc/containerd/certs.d/quay.io/hosts.toml'] });
  });

  it('defect 2: the default mode is credential-provider (it authenticates every pull)', async () => {
    const root = hostTree('kubeadm');
    const p = await cli('patch', '--root', root, '--match-image', 'registry.example.com', '--no-restart');
    expect([p.code, p.lines[0]]).toEqual([0, expect.objectContaining({ msg: 'patched', mode: 'credential-provider' })]);
  });

  it('fails with a clear message and exit code 1 on an unknown layout', async () => {
    const r = await cli('patch', '--root', '/nonexistent-host-root', '--mode', 'mirror', '--mirror', 'docker.io=https://x.example.com');
    expect(r.code).toBe(1);
    expect(r.lines[0]).toMatchObject({ msg: 'failed', error: expect.stringContaining('unknown node layout') });
  });
});
