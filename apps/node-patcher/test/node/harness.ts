/**
 * One real node per test file: a copy of the cached Debian root booted with systemd-nspawn,
 * kubelet.service laid out as EKS AL2023 lays it out (amazon-eks-ami's unit and nodeadm's files,
 * see fixtures.ts), the kubelet stand-in as /usr/bin/kubelet, a nodeadm stand-in that rewrites
 * kubelet's files at boot when /etc/eks/nodeadm-rewrite exists (as `nodeadm init` does on every
 * AL2023 boot), and the real image service (libs/cri-image-service) on a socket bound into the
 * node at /run/registry-proxy.
 */
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { CriBackend, CriImageServer } from '@registry-proxy/cri-image-service';
import { freePort, requireCommands } from '@registry-proxy/testing';
import type { RunOptions } from '../../src/run.js';
import { hostTree, type LayoutName } from '../fixtures.js';
import { bounded, waitUntil } from './bounded.js';
import { layOutProvider } from './layouts.js';
import { copyRoot, ensureRoot, Node } from './nspawn.js';

/** Opt-in (REGISTRY_PROXY_NODE_E2E=1): root, systemd-nspawn and debootstrap; `npm test` sets it in CI. */
export const NODE_E2E = process.env['REGISTRY_PROXY_NODE_E2E'] === '1';
export const SOCKET = '/run/registry-proxy/image-service.sock';
export const CONFIG = '/etc/kubernetes/kubelet/config.json';
export const ENV = '/etc/eks/kubelet/environment';
export const CLI = join(__dirname, '../../dist/main.js');
export const KIS = join(__dirname, '../../../kubelet-image-service/dist/main.js');
/** Boot, poweroff and root copy fit in this; a whole test gets a few of them. */
export const STEP_MS = 90_000;

export interface StandinReport {
  pid: number;
  imageServiceEndpoint: string;
  providers: Array<{ name: string; response: string }>;
  /** The pods' images it pulled: which provider's credentials, and the registry's answers. */
  pulls: Array<{ image: string; by?: string; manifest?: number; blobs?: number[]; error?: string }>;
}

export class TestNode {
  node!: Node;
  root = '';
  socketDir = '';
  port = 0;
  readonly logs: string[] = [];
  private service: CriImageServer | undefined;

  constructor(readonly layout: LayoutName = 'eks-al2023') {}

  /** Copies the root, lays kubelet out, boots. */
  async start(): Promise<void> {
    await requireCommands('systemd-nspawn', 'debootstrap', 'nsenter');
    if (process.getuid?.() !== 0) throw new Error('the real-node test needs root (systemd-nspawn)');
    if (!existsSync(CLI) || !existsSync(KIS)) throw new Error('apps/node-patcher and apps/kubelet-image-service are not built: run `npm run build` first');
    await ensureRoot();
    this.root = await copyRoot();
    this.socketDir = mkdtempSync(join(tmpdir(), 'rp-node-sock-'));
    this.port = await freePort();
    if (this.layout === 'eks-al2023') this.layOut();
    else layOutProvider(this, this.layout);
    this.node = new Node(this.root, [`ro:${process.execPath}:/usr/local/bin/node`, `${this.socketDir}:/run/registry-proxy`]);
    await this.node.boot();
  }

  async stop(): Promise<void> {
    await this.node?.stop();
    await this.stopService();
    if (this.root) rmSync(dirname(this.root), { recursive: true, force: true });
    if (this.socketDir) rmSync(this.socketDir, { recursive: true, force: true });
  }

  file(p: string): string {
    return readFileSync(join(this.root, p), 'utf8');
  }

  write(p: string, text: string, mode = 0o644): void {
    mkdirSync(dirname(join(this.root, p)), { recursive: true });
    writeFileSync(join(this.root, p), text);
    chmodSync(join(this.root, p), mode);
  }

  get healthz(): string {
    return `http://127.0.0.1:${this.port}/healthz`;
  }

  run(): RunOptions {
    return {
      root: this.root,
      busAddress: this.node.bus,
      healthz: this.healthz,
      healthTimeoutMs: 60_000,
      healthIntervalMs: 250,
      callTimeoutMs: 30_000,
      restart: true,
      socketSeenAt: join(this.socketDir, 'image-service.sock'),
      socketWaitMs: 30_000,
      log: (m, e) => this.logs.push(`${m} ${e ? JSON.stringify(e) : ''}`),
    };
  }

  /** What the running kubelet stand-in started with (its pid, endpoint, providers' answers). */
  async standin(): Promise<StandinReport> {
    const res = await fetch(`http://127.0.0.1:${this.port}/standin`, { signal: AbortSignal.timeout(5000) });
    return (await res.json()) as StandinReport;
  }

  /** Waits for kubelet; failing, says what systemd and kubelet's journal say. */
  async kubeletUp(): Promise<void> {
    try {
      await waitUntil(
        'kubelet to be active and healthy',
        async () => (await this.node.systemctl('is-active', 'kubelet.service')).stdout.trim() === 'active' && (await fetch(this.healthz, { signal: AbortSignal.timeout(2000) })).status === 200,
        60_000,
      );
    } catch (err) {
      const status = await this.node.inside(['systemctl', 'status', '--no-pager', '-l', 'kubelet.service'], 30_000).catch((e: Error) => ({ stdout: e.message }));
      const journal = await this.node.journal('kubelet.service').catch((e: Error) => e.message);
      throw new Error(`${(err as Error).message}\n${status.stdout}\n${journal.slice(-3000)}`);
    }
  }

  async reboot(): Promise<void> {
    await this.node.stop();
    await this.node.boot();
  }

  async startService(): Promise<void> {
    await this.stopService(); // one at a time: a server left listening keeps jest from exiting
    this.service = new CriImageServer({ backend: new CriBackend({ socketPath: join(this.socketDir, 'no-runtime.sock') }) });
    await bounded(this.service.listen(join(this.socketDir, 'image-service.sock')), 10_000, 'the image service to listen');
  }

  async stopService(): Promise<void> {
    await bounded(this.service?.close(1000) ?? Promise.resolve(), 10_000, 'the image service to close');
    this.service = undefined;
    if (this.socketDir) rmSync(join(this.socketDir, 'image-service.sock'), { force: true });
  }

  /** The kubelet stand-in at `path` (where the provider's unit runs kubelet from). */
  installKubelet(path: string): void {
    this.write(path, '#!/bin/sh\nexec /usr/local/bin/node /opt/kubelet-standin/kubelet-standin.mjs "$@"\n', 0o755);
    cpSync(join(__dirname, 'kubelet-standin.mjs'), join(this.root, 'opt/kubelet-standin/kubelet-standin.mjs'));
    cpSync(dirname(require.resolve('yaml/package.json')), join(this.root, 'opt/kubelet-standin/node_modules/yaml'), { recursive: true });
  }

  /** Starts `unit` at boot, as `systemctl enable` would (multi-user.target.wants). */
  enable(unit: string, path = `/etc/systemd/system/${unit}`): void {
    mkdirSync(join(this.root, 'etc/systemd/system/multi-user.target.wants'), { recursive: true });
    symlinkSync(path, join(this.root, 'etc/systemd/system/multi-user.target.wants', unit));
  }

  /** kubelet.service and nodeadm's files as on an AL2023 node, with the kubelet stand-in as /usr/bin/kubelet. */
  private layOut(): void {
    cpSync(hostTree('eks-al2023'), this.root, { recursive: true, force: true });
    this.write(CONFIG, this.file(CONFIG).replace('{\n    "kind"', `{\n    "healthzPort": ${this.port},\n    "kind"`));
    this.write(
      '/etc/eks/image-credential-provider/ecr-credential-provider',
      `#!/bin/sh\necho '{"kind":"CredentialProviderResponse","apiVersion":"credentialprovider.kubelet.k8s.io/v1","cacheKeyType":"Registry","auth":{}}'\n`,
      0o755,
    );
    this.installKubelet('/usr/bin/kubelet');
    // nodeadm's boot rewrite: its own config.json (another cluster DNS) and environment (flags in another order).
    this.write('/etc/eks/nodeadm-templates/config.json', this.file(CONFIG).replace('"172.20.0.10"', '"172.20.0.53"'));
    const args = this.file(ENV)
      .replace(/^NODEADM_KUBELET_ARGS=/, '')
      .trim()
      .split(' ');
    this.write('/etc/eks/nodeadm-templates/environment', `NODEADM_KUBELET_ARGS=${args.reverse().join(' ')}`);
    this.write(
      '/etc/systemd/system/nodeadm-config.service',
      "[Unit]\nDescription=nodeadm stand-in: writes kubelet config and environment at boot\nBefore=kubelet.service\n\n[Service]\nType=oneshot\nExecStart=/bin/sh -c 'if [ -f /etc/eks/nodeadm-rewrite ]; then cp /etc/eks/nodeadm-templates/config.json /etc/kubernetes/kubelet/config.json; cp /etc/eks/nodeadm-templates/environment /etc/eks/kubelet/environment; fi'\n\n[Install]\nWantedBy=multi-user.target\n",
    );
    for (const unit of ['kubelet.service', 'nodeadm-config.service']) this.enable(unit);
  }
}
