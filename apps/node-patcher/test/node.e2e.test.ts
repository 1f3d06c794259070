/**
 * The patcher on a real node: a Debian root booted with systemd-nspawn, its real systemd and
 * D-Bus, kubelet.service laid out as EKS AL2023 lays it out (amazon-eks-ami's unit and nodeadm's
 * files, see fixtures.ts) and a nodeadm stand-in that rewrites kubelet's files at boot, as
 * `nodeadm init` does on every AL2023 boot (test/node/harness.ts). Stand-ins, only where no real
 * part can run here: kubelet (test/node/kubelet-standin.mjs: parses flags and config as kubelet
 * does, dials the image service socket, serves /healthz) and nodeadm (a oneshot unit copying its
 * files). The image service is the real gRPC server (libs/cri-image-service) on a socket bound
 * into the node at /run/registry-proxy. Needs root, systemd-nspawn and debootstrap
 * (tools/install-deps.sh); the node's root is built once and cached (test/node/build-root.sh).
 * Sources of the layout: amazon-eks-ami templates/al2023/runtime/rootfs/etc/systemd/system/kubelet.service
 * and nodeadm/internal/kubelet (environment.go, config.go), cited in fixtures.ts.
 * A kill -9 of the patcher at each of its steps: node-crash.e2e.test.ts.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runPatch, runRevert } from '../src/run.js';
import { bounded, run as runCmd, waitUntil } from './node/bounded.js';
import { CONFIG, KIS, NODE_E2E, SOCKET, STEP_MS, TestNode } from './node/harness.js';

// Each test boots or reboots the node at most a few times; a hang fails within this, saying where.
jest.setTimeout(4 * STEP_MS);
// Opt-in: runs where REGISTRY_PROXY_NODE_E2E=1 (as root, with systemd-nspawn and debootstrap from
// tools/install-deps.sh); `npm test` sets it in CI once tools/install-deps.sh has built the root.
// Elsewhere (no root: a developer's laptop) it is skipped, saying so.
const maybe = NODE_E2E ? describe : describe.skip;
const opts = { mode: 'image-service' as const, kubeletVersion: 'v1.31.0' };
const t = new TestNode();
const file = (p: string) => t.file(p);
const write = (p: string, text: string) => t.write(p, text);
const run = () => t.run();
const standin = () => t.standin();
const kubeletUp = () => t.kubeletUp();
const reboot = () => t.reboot();
const startService = () => t.startService();
const stopService = () => t.stopService();

/** Processes a test started; killed at the end even when the test failed half-way. */
const children: ChildProcess[] = [];

if (NODE_E2E) {
  // The first run on a machine builds the cached root (debootstrap, minutes): its own bound.
  beforeAll(() => t.start(), 20 * 60_000);
  afterAll(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await t.stop();
  }, STEP_MS);
}

maybe('a real node: EKS AL2023 layout, systemd over its D-Bus', () => {
  it('boots: kubelet runs on its own runtime', async () => {
    await kubeletUp();
    expect((await standin()).imageServiceEndpoint).toBe('');
  });

  it('first install: kubelet is pointed at the socket only once the image service serves it', async () => {
    const before = await standin();
    // No image service yet (the pod's image service starts beside the patcher): nothing written.
    await expect(runPatch({ ...run(), socketWaitMs: 1500 }, opts)).rejects.toThrow(/does not serve/);
    expect(JSON.parse(file(CONFIG)).imageServiceEndpoint).toBeUndefined();
    expect(existsSync(join(t.root, 'etc/registry-proxy'))).toBe(false);
    expect((await standin()).pid).toBe(before.pid);
  });

  it('patch: waits for the socket, daemon-reload, restart through D-Bus, and a new kubelet process on the image service', async () => {
    const before = await standin();
    const patching = runPatch(run(), opts);
    await new Promise((r) => setTimeout(r, 1500));
    // Still waiting for the socket: kubelet untouched.
    expect(JSON.parse(file(CONFIG)).imageServiceEndpoint).toBeUndefined();
    await startService();
    expect(await patching).toBe('patched');
    const after = await standin();
    expect(after.pid).not.toBe(before.pid);
    expect(after.imageServiceEndpoint).toBe(`unix://${SOCKET}`);
    // systemd knows the guard drop-in: it was reloaded before the restart (defect 5).
    const show = (await t.node.systemctl('show', 'kubelet.service', '-p', 'DropInPaths', '-p', 'NeedDaemonReload')).stdout;
    expect(show).toContain('/etc/systemd/system/kubelet.service.d/05-registry-proxy-guard.conf');
    expect(show).toContain('NeedDaemonReload=no');
    expect(t.logs.join('\n')).toMatch(/daemon-reload done[\s\S]*kubelet.service runs again/);
  });

  it("reboot with the socket there and nodeadm rewriting kubelet's files: kubelet starts, the patcher re-applies over the new baseline", async () => {
    write('/etc/eks/nodeadm-rewrite', '');
    await reboot();
    await kubeletUp();
    // nodeadm's config has no image service: kubelet is on its runtime until the patcher runs.
    expect((await standin()).imageServiceEndpoint).toBe('');
    expect(JSON.parse(file(CONFIG)).clusterDNS).toEqual(['172.20.0.53']);
    t.logs.length = 0;
    expect(await runPatch(run(), opts)).toBe('patched');
    expect(t.logs.join('\n')).toContain('re-applied over the new baseline');
    expect((await standin()).imageServiceEndpoint).toBe(`unix://${SOCKET}`);
    expect(JSON.parse(file(CONFIG))).toMatchObject({ clusterDNS: ['172.20.0.53'], imageServiceEndpoint: `unix://${SOCKET}` });
    rmSync(join(t.root, 'etc/eks/nodeadm-rewrite'));
  });

  it('reboot with the socket gone: the guard puts kubelet files back before kubelet starts', async () => {
    await stopService();
    await reboot();
    await kubeletUp();
    expect((await standin()).imageServiceEndpoint).toBe('');
    expect(await t.node.journal('kubelet.service')).toContain('registry-proxy: image service socket missing; kubelet files restored');
    expect(existsSync(join(t.root, 'var/lib/registry-proxy'))).toBe(false);
    expect(existsSync(join(t.root, 'etc/registry-proxy'))).toBe(false);
    expect(JSON.parse(file(CONFIG)).imageServiceEndpoint).toBeUndefined();
  });

  it('revert leaves `diff -r` against the tree before the patch empty', async () => {
    // The tree before this patch: nodeadm's rewrite from the earlier boot is now the baseline.
    const baseline = mkdtempSync(join(tmpdir(), 'rp-node-baseline-'));
    for (const d of ['etc/kubernetes', 'etc/eks', 'etc/systemd/system']) cpSync(join(t.root, d), join(baseline, d), { recursive: true, verbatimSymlinks: true });
    await startService();
    expect(await runPatch(run(), opts)).toBe('patched');
    expect(await runRevert(run())).toBe('reverted');
    await kubeletUp();
    expect((await standin()).imageServiceEndpoint).toBe('');
    for (const d of ['etc/kubernetes', 'etc/eks', 'etc/systemd/system']) {
      const r = await runCmd('diff', ['-r', '--no-dereference', join(baseline, d), join(t.root, d)], 30_000, `diff -r ${d}`);
      expect([d, r.stdout]).toEqual([d, '']);
    }
    expect(existsSync(join(t.root, 'var/lib/registry-proxy'))).toBe(false);
    expect(existsSync(join(t.root, 'etc/registry-proxy'))).toBe(false);
    rmSync(baseline, { recursive: true, force: true });
  });

  it('rolling update (maxSurge 1): the new image service process takes the socket over, the old one exits, and kubelet still starts on the socket', async () => {
    // Two real kubelet-image-service processes on one socket path, as two pods of the DaemonSet.
    // The runtime socket the service forwards to (it refuses to start without one); answers nothing.
    const runtime = createNetServer((c) => c.destroy());
    await bounded(new Promise<void>((r) => runtime.listen(join(t.socketDir, 'runtime.sock'), r)), 10_000, 'the runtime socket to listen');
    const cfg = join(t.socketDir, 'kis.yaml');
    writeFileSync(cfg, `socket: ${join(t.socketDir, 'image-service.sock')}\nbackend: {type: cri, socket: ${join(t.socketDir, 'runtime.sock')}}\nhealth: {port: 0}\n`);
    const pod = (): { child: ChildProcess; out: () => string; exited: Promise<unknown> } => {
      const child = spawn(process.execPath, [KIS, '--config', cfg], { stdio: ['ignore', 'pipe', 'pipe'] });
      children.push(child);
      let out = '';
      child.stdout?.on('data', (c: Buffer) => (out += c.toString()));
      return { child, out: () => out, exited: new Promise((r) => child.once('exit', r)) };
    };
    const old = pod();
    await waitUntil('the old pod to listen', async () => old.out().includes('kubelet image service listening'), 90_000);
    expect(await runPatch(run(), opts)).toBe('patched');
    expect((await standin()).imageServiceEndpoint).toBe(`unix://${SOCKET}`);
    const next = pod();
    await waitUntil('the new pod to listen', async () => next.out().includes('kubelet image service listening'), 90_000);
    old.child.kill('SIGTERM');
    await bounded(old.exited, 30_000, 'the old image service pod to exit after SIGTERM');
    expect(old.out()).toContain('socket taken over by another process; left in place');
    // The new pod's patcher finds the node patched; a kubelet restart reaches the new process.
    expect(await runPatch(run(), opts)).toBe('unchanged');
    const before = await standin();
    await t.node.systemctl('restart', 'kubelet.service');
    await kubeletUp();
    const after = await standin();
    expect(after.pid).not.toBe(before.pid);
    expect(after.imageServiceEndpoint).toBe(`unix://${SOCKET}`);
    expect(await runRevert(run())).toBe('reverted');
    next.child.kill('SIGTERM');
    await bounded(next.exited, 30_000, 'the new image service pod to exit after SIGTERM');
    await bounded(new Promise((r) => runtime.close(r)), 10_000, 'the runtime socket to close');
  });
});
