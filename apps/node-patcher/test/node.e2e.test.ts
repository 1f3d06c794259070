/**
 * The patcher on a real node: a Debian root booted with systemd-nspawn, its real systemd and
 * D-Bus, kubelet.service laid out as EKS AL2023 lays it out (amazon-eks-ami's unit and nodeadm's
 * files, see fixtures.ts) and a nodeadm stand-in that rewrites kubelet's files at boot, as
 * `nodeadm init` does on every AL2023 boot. Stand-ins, only where no real part can run here:
 * kubelet (test/node/kubelet-standin.mjs: parses flags and config as kubelet does, dials the
 * image service socket, serves /healthz) and nodeadm (a oneshot unit copying its files).
 * The image service is the real gRPC server (libs/cri-image-service) on a socket bound into the
 * node at /run/registry-proxy. Needs root, systemd-nspawn and debootstrap (tools/install-deps.sh);
 * the node's root is built once and cached (test/node/build-root.sh).
 * Sources of the layout: amazon-eks-ami templates/al2023/runtime/rootfs/etc/systemd/system/kubelet.service
 * and nodeadm/internal/kubelet (environment.go, config.go), cited in fixtures.ts.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { CriBackend, CriImageServer } from '@registry-proxy/cri-image-service';
import { freePort, requireCommands, waitFor } from '@registry-proxy/testing';
import { runPatch, runRevert, type RunOptions } from '../src/run.js';
import { hostTree } from './fixtures.js';
import { copyRoot, ensureRoot, Node } from './node/nspawn.js';

jest.setTimeout(15 * 60_000);
// Opt-in: runs where REGISTRY_PROXY_NODE_E2E=1 (as root, with systemd-nspawn and debootstrap from
// tools/install-deps.sh). Not in CI yet: it passed 12/12 in a full run on a developer's tree, but
// hung on its first boot in a run from a fresh clone (2026-12-03), which is not understood yet.
// Elsewhere (no root: a developer's laptop) it is skipped, saying so.
const ENABLED = process.env['REGISTRY_PROXY_NODE_E2E'] === '1';
const maybe = ENABLED ? describe : describe.skip;
const exec = promisify(execFile);
const SOCKET = '/run/registry-proxy/image-service.sock';
const CONFIG = '/etc/kubernetes/kubelet/config.json';
const ENV = '/etc/eks/kubelet/environment';
const CLI = join(__dirname, '../dist/main.js');
const KIS = join(__dirname, '../../kubelet-image-service/dist/main.js');

let node: Node;
let root: string;
let socketDir: string;
let port: number;
let service: CriImageServer | undefined;
const logs: string[] = [];
const opts = { mode: 'image-service' as const, kubeletVersion: 'v1.31.0' };

const file = (p: string) => readFileSync(join(root, p), 'utf8');
const write = (p: string, text: string, mode = 0o644) => {
  mkdirSync(dirname(join(root, p)), { recursive: true });
  writeFileSync(join(root, p), text);
  chmodSync(join(root, p), mode);
};
const run = (): RunOptions => ({
  root,
  busAddress: node.bus,
  healthz: `http://127.0.0.1:${port}/healthz`,
  healthTimeoutMs: 60_000,
  healthIntervalMs: 250,
  restart: true,
  socketSeenAt: join(socketDir, 'image-service.sock'),
  socketWaitMs: 30_000,
  log: (m, e) => logs.push(`${m} ${e ? JSON.stringify(e) : ''}`),
});
const standin = async () => (await (await fetch(`http://127.0.0.1:${port}/standin`)).json()) as { pid: number; imageServiceEndpoint: string };
const kubeletUp = () =>
  waitFor(
    'kubelet to be active and healthy',
    async () => (await node.systemctl('is-active', 'kubelet.service')).stdout.trim() === 'active' && (await fetch(`http://127.0.0.1:${port}/healthz`)).status === 200,
    60_000,
  );

async function startService(): Promise<void> {
  await stopService(); // one at a time: a server left listening keeps jest from exiting
  service = new CriImageServer({ backend: new CriBackend({ socketPath: join(socketDir, 'no-runtime.sock') }) });
  await service.listen(join(socketDir, 'image-service.sock'));
}
async function stopService(): Promise<void> {
  await service?.close(1000);
  service = undefined;
  if (socketDir) rmSync(join(socketDir, 'image-service.sock'), { force: true });
}

/** kubelet.service and nodeadm's files as on an AL2023 node, with the kubelet stand-in as /usr/bin/kubelet. */
function layOut(): void {
  const tree = hostTree('eks-al2023');
  cpSync(tree, root, { recursive: true, force: true });
  write(CONFIG, file(CONFIG).replace('{\n    "kind"', `{\n    "healthzPort": ${port},\n    "kind"`));
  write(
    '/etc/eks/image-credential-provider/ecr-credential-provider',
    `#!/bin/sh\necho '{"kind":"CredentialProviderResponse","apiVersion":"credentialprovider.kubelet.k8s.io/v1","cacheKeyType":"Registry","auth":{}}'\n`,
    0o755,
  );
  write('/usr/bin/kubelet', '#!/bin/sh\nexec /usr/local/bin/node /opt/kubelet-standin/kubelet-standin.mjs "$@"\n', 0o755);
  cpSync(join(__dirname, 'node/kubelet-standin.mjs'), join(root, 'opt/kubelet-standin/kubelet-standin.mjs'));
  cpSync(dirname(require.resolve('yaml/package.json')), join(root, 'opt/kubelet-standin/node_modules/yaml'), { recursive: true });
  // nodeadm's boot rewrite: its own config.json (another cluster DNS) and environment (flags in another order).
  write('/etc/eks/nodeadm-templates/config.json', file(CONFIG).replace('"172.20.0.10"', '"172.20.0.53"'));
  const args = file(ENV)
    .replace(/^NODEADM_KUBELET_ARGS=/, '')
    .trim()
    .split(' ');
  write('/etc/eks/nodeadm-templates/environment', `NODEADM_KUBELET_ARGS=${args.reverse().join(' ')}`);
  write(
    '/etc/systemd/system/nodeadm-config.service',
    "[Unit]\nDescription=nodeadm stand-in: writes kubelet config and environment at boot\nBefore=kubelet.service\n\n[Service]\nType=oneshot\nExecStart=/bin/sh -c 'if [ -f /etc/eks/nodeadm-rewrite ]; then cp /etc/eks/nodeadm-templates/config.json /etc/kubernetes/kubelet/config.json; cp /etc/eks/nodeadm-templates/environment /etc/eks/kubelet/environment; fi'\n\n[Install]\nWantedBy=multi-user.target\n",
  );
  for (const unit of ['kubelet.service', 'nodeadm-config.service']) {
    mkdirSync(join(root, 'etc/systemd/system/multi-user.target.wants'), { recursive: true });
    symlinkSync(`/etc/systemd/system/${unit}`, join(root, 'etc/systemd/system/multi-user.target.wants', unit));
  }
}

async function reboot(): Promise<void> {
  await node.stop();
  await node.boot();
}

const beforeAllIf = (fn: () => Promise<void>) => (ENABLED ? beforeAll(fn) : undefined);
const afterAllIf = (fn: () => Promise<void>) => (ENABLED ? afterAll(fn) : undefined);

beforeAllIf(async () => {
  await requireCommands('systemd-nspawn', 'debootstrap', 'nsenter');
  if (process.getuid?.() !== 0) throw new Error('the real-node test needs root (systemd-nspawn)');
  await ensureRoot();
  if (!existsSync(CLI) || !existsSync(KIS)) throw new Error('apps/node-patcher and apps/kubelet-image-service are not built: run `npm run build` first');
  root = await copyRoot();
  socketDir = mkdtempSync(join(tmpdir(), 'rp-node-sock-'));
  port = await freePort();
  layOut();
  node = new Node(root, [`ro:${process.execPath}:/usr/local/bin/node`, `${socketDir}:/run/registry-proxy`]);
  await node.boot();
});

afterAllIf(async () => {
  await node?.stop();
  await stopService();
  if (root) rmSync(dirname(root), { recursive: true, force: true });
});

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
    expect(existsSync(join(root, 'etc/registry-proxy'))).toBe(false);
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
    const show = (await node.systemctl('show', 'kubelet.service', '-p', 'DropInPaths', '-p', 'NeedDaemonReload')).stdout;
    expect(show).toContain('/etc/systemd/system/kubelet.service.d/05-registry-proxy-guard.conf');
    expect(show).toContain('NeedDaemonReload=no');
    expect(logs.join('\n')).toMatch(/daemon-reload done[\s\S]*kubelet.service runs again/);
  });

  it("reboot with the socket there and nodeadm rewriting kubelet's files: kubelet starts, the patcher re-applies over the new baseline", async () => {
    write('/etc/eks/nodeadm-rewrite', '');
    await reboot();
    await kubeletUp();
    // nodeadm's config has no image service: kubelet is on its runtime until the patcher runs.
    expect((await standin()).imageServiceEndpoint).toBe('');
    expect(JSON.parse(file(CONFIG)).clusterDNS).toEqual(['172.20.0.53']);
    logs.length = 0;
    expect(await runPatch(run(), opts)).toBe('patched');
    expect(logs.join('\n')).toContain('re-applied over the new baseline');
    expect((await standin()).imageServiceEndpoint).toBe(`unix://${SOCKET}`);
    expect(JSON.parse(file(CONFIG))).toMatchObject({ clusterDNS: ['172.20.0.53'], imageServiceEndpoint: `unix://${SOCKET}` });
    rmSync(join(root, 'etc/eks/nodeadm-rewrite'));
  });

  it('reboot with the socket gone: the guard puts kubelet files back before kubelet starts', async () => {
    await stopService();
    await reboot();
    await kubeletUp();
    expect((await standin()).imageServiceEndpoint).toBe('');
    expect(await node.journal('kubelet.service')).toContain('registry-proxy: image service socket missing; kubelet files restored');
    expect(existsSync(join(root, 'var/lib/registry-proxy'))).toBe(false);
    expect(existsSync(join(root, 'etc/registry-proxy'))).toBe(false);
    expect(JSON.parse(file(CONFIG)).imageServiceEndpoint).toBeUndefined();
  });

  it('revert leaves `diff -r` against the tree before the patch empty', async () => {
    // The tree before this patch: nodeadm's rewrite from the earlier boot is now the baseline.
    const baseline = mkdtempSync(join(tmpdir(), 'rp-node-baseline-'));
    for (const d of ['etc/kubernetes', 'etc/eks', 'etc/systemd/system']) cpSync(join(root, d), join(baseline, d), { recursive: true, verbatimSymlinks: true });
    await startService();
    expect(await runPatch(run(), opts)).toBe('patched');
    expect(await runRevert(run())).toBe('reverted');
    await kubeletUp();
    expect((await standin()).imageServiceEndpoint).toBe('');
    for (const d of ['etc/kubernetes', 'etc/eks', 'etc/systemd/system']) {
      const r = await exec('diff', ['-r', '--no-dereference', join(baseline, d), join(root, d)]).catch((e: { stdout: string }) => e);
      expect([d, r.stdout]).toEqual([d, '']);
    }
    expect(existsSync(join(root, 'var/lib/registry-proxy'))).toBe(false);
    expect(existsSync(join(root, 'etc/registry-proxy'))).toBe(false);
  });

  it.each([50, 300, 700, 1200, 2500])('kill -9 of the patcher after %i ms leaves a node that starts kubelet (a reboot without the socket), and a later run converges', async (ms) => {
    await startService();
    const bus = node.bus;
    const child = spawn(
      process.execPath,
      [
        CLI,
        'patch',
        '--root',
        root,
        '--dbus',
        bus,
        '--healthz',
        `http://127.0.0.1:${port}/healthz`,
        '--mode',
        'image-service',
        '--kubelet-version',
        'v1.31.0',
        '--socket-seen-at',
        join(socketDir, 'image-service.sock'),
      ],
      { stdio: 'ignore' },
    );
    await new Promise((r) => setTimeout(r, ms));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    await stopService();
    await reboot();
    await kubeletUp();
    expect((await standin()).imageServiceEndpoint).toBe('');
    await startService();
    expect(await runPatch(run(), opts)).toMatch(/^(patched|unchanged)$/);
    expect((await standin()).imageServiceEndpoint).toBe(`unix://${SOCKET}`);
    expect(await runRevert(run())).toBe('reverted');
    await stopService();
  });
  it('rolling update (maxSurge 1): the new image service process takes the socket over, the old one exits, and kubelet still starts on the socket', async () => {
    // Two real kubelet-image-service processes on one socket path, as two pods of the DaemonSet.
    // The runtime socket the service forwards to (it refuses to start without one); answers nothing.
    const runtime = createNetServer((c) => c.destroy());
    await new Promise<void>((r) => runtime.listen(join(socketDir, 'runtime.sock'), r));
    const cfg = join(socketDir, 'kis.yaml');
    writeFileSync(cfg, `socket: ${join(socketDir, 'image-service.sock')}\nbackend: {type: cri, socket: ${join(socketDir, 'runtime.sock')}}\nhealth: {port: 0}\n`);
    const pod = (): { child: ChildProcess; out: () => string; exited: Promise<unknown> } => {
      const child = spawn(process.execPath, [KIS, '--config', cfg], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout?.on('data', (c: Buffer) => (out += c.toString()));
      return { child, out: () => out, exited: new Promise((r) => child.once('exit', r)) };
    };
    const old = pod();
    await waitFor('the old pod to listen', async () => old.out().includes('kubelet image service listening'), 90_000);
    expect(await runPatch(run(), opts)).toBe('patched');
    expect((await standin()).imageServiceEndpoint).toBe(`unix://${SOCKET}`);
    const next = pod();
    await waitFor('the new pod to listen', async () => next.out().includes('kubelet image service listening'), 90_000);
    old.child.kill('SIGTERM');
    await old.exited;
    expect(old.out()).toContain('socket taken over by another process; left in place');
    // The new pod's patcher finds the node patched; a kubelet restart reaches the new process.
    expect(await runPatch(run(), opts)).toBe('unchanged');
    const before = await standin();
    await node.systemctl('restart', 'kubelet.service');
    await kubeletUp();
    const after = await standin();
    expect(after.pid).not.toBe(before.pid);
    expect(after.imageServiceEndpoint).toBe(`unix://${SOCKET}`);
    expect(await runRevert(run())).toBe('reverted');
    next.child.kill('SIGTERM');
    await next.exited;
    await new Promise((r) => runtime.close(r));
  });
});
