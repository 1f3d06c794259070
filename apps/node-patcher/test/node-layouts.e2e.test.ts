/**
 * The other providers' layouts on a real node: kubeadm (kubelet.service and 10-kubeadm.conf
 * under /usr/lib/systemd/system), EKS AL2 (amazon-eks-ami templates/al2: kubelet flags in the
 * unit, 10-kubelet-args.conf) and GKE/COS (kubernetes' cluster/gce scripts: /etc/default/kubelet,
 * kubelet under /home/kubernetes/bin). Each tree is fixtures.ts's (cited there), booted on real
 * systemd with the kubelet stand-in (test/node/layouts.ts says what else stands in). For each:
 * kubelet starts as the provider laid it out; image-service mode is patched with a restart over
 * D-Bus; a reboot without the socket puts kubelet back on its runtime (the guard); a new run
 * converges; revert leaves `diff -r` empty.
 */
import { cpSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runPatch, runRevert } from '../src/run.js';
import type { LayoutName } from './fixtures.js';
import { run as runCmd } from './node/bounded.js';
import { NODE_E2E, SOCKET, STEP_MS, TestNode } from './node/harness.js';
import { PLACES } from './node/layouts.js';

jest.setTimeout(5 * STEP_MS);
const maybe = NODE_E2E ? describe.each : describe.skip.each;
const opts = { mode: 'image-service' as const, kubeletVersion: 'v1.31.0' };
/** Everything the layouts and the patcher touch (not /etc as a whole: systemd writes there at boot). */
const DIRS = ['etc/systemd/system', 'etc/default', 'etc/kubernetes', 'etc/eks', 'usr/lib/systemd/system', 'var/lib/kubelet', 'home/kubernetes'];

maybe(Object.keys(PLACES) as LayoutName[])('a real node laid out as %s', (layout) => {
  const t = new TestNode(layout);
  if (NODE_E2E) {
    beforeAll(() => t.start(), 20 * 60_000);
    afterAll(() => t.stop(), STEP_MS);
  }

  it('boots with kubelet on its runtime; patch, a reboot without the socket, a new run and revert keep kubelet starting and leave `diff -r` empty', async () => {
    await t.kubeletUp();
    expect((await t.standin()).imageServiceEndpoint).toBe('');
    const baseline = mkdtempSync(join(tmpdir(), 'rp-node-baseline-'));
    const dirs = DIRS.filter((d) => existsSync(join(t.root, d)));
    for (const d of dirs) cpSync(join(t.root, d), join(baseline, d), { recursive: true, verbatimSymlinks: true });

    await t.startService();
    const before = await t.standin();
    expect(await runPatch(t.run(), opts)).toBe('patched');
    const after = await t.standin();
    expect(after.pid).not.toBe(before.pid);
    expect(after.imageServiceEndpoint).toBe(`unix://${SOCKET}`);

    await t.stopService();
    await t.reboot();
    await t.kubeletUp();
    expect((await t.standin()).imageServiceEndpoint).toBe('');
    expect(await t.node.journal('kubelet.service')).toContain('registry-proxy: image service socket missing; kubelet files restored');

    await t.startService();
    expect(await runPatch(t.run(), opts)).toBe('patched');
    expect((await t.standin()).imageServiceEndpoint).toBe(`unix://${SOCKET}`);
    expect(await runRevert(t.run())).toBe('reverted');
    await t.kubeletUp();
    expect((await t.standin()).imageServiceEndpoint).toBe('');
    for (const d of dirs) {
      const r = await runCmd('diff', ['-r', '--no-dereference', join(baseline, d), join(t.root, d)], 30_000, `diff -r ${d}`);
      expect([d, r.code, r.stdout]).toEqual([d, 0, '']);
    }
    for (const d of DIRS.filter((x) => !dirs.includes(x))) expect([d, existsSync(join(t.root, d))]).toEqual([d, false]);
    expect(existsSync(join(t.root, 'var/lib/registry-proxy'))).toBe(false);
    expect(existsSync(join(t.root, 'etc/registry-proxy'))).toBe(false);
    await t.stopService();
    rmSync(baseline, { recursive: true, force: true });
  });
});
