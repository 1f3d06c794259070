import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, startDaemon, waitFor } from './proc.js';

/** A real dockerd (vfs storage, no networking changes) on a private unix socket. */
export interface TestDockerd {
  readonly sock: string;
  /** Runs the docker CLI against this daemon with a private config directory. */
  docker(args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }>;
  stop(): Promise<void>;
}

export async function startDockerd(): Promise<TestDockerd> {
  const dir = mkdtempSync(join(tmpdir(), 'rp-dockerd-'));
  const sock = join(dir, 'docker.sock');
  const execRoot = join(dir, 'exec');
  const d = startDaemon(
    'dockerd',
    [
      '--iptables=false',
      '--ip6tables=false',
      '--bridge=none',
      '--storage-driver=vfs',
      `--data-root=${join(dir, 'data')}`,
      `--exec-root=${execRoot}`,
      `--pidfile=${join(dir, 'docker.pid')}`,
      '-H',
      `unix://${sock}`,
    ],
    join(dir, 'dockerd.log'),
  );
  const env = { ...process.env, DOCKER_CONFIG: join(dir, 'client-config'), DOCKER_HOST: `unix://${sock}` };
  const docker = (args: string[], input?: string) => run('docker', args, { env, ...(input === undefined ? {} : { input }) });
  await waitFor('dockerd', async () => (await docker(['version', '--format', '{{.Server.Version}}'])).code === 0, 30_000);
  return {
    sock,
    docker,
    async stop() {
      await d.stop();
      try {
        execFileSync('sh', ['-c', `mountpoint -q ${execRoot}/netns/default && umount ${execRoot}/netns/default || true`]);
      } catch {
        /* nothing mounted */
      }
    },
  };
}

/** A real containerd with its CRI plugin, reading per-registry hosts.toml from a certs.d folder. */
export interface TestContainerd {
  readonly sock: string;
  readonly certsDir: string;
  ctr(args: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
  /** Trusts `caFile` for the HTTPS registry at `host` (a hosts.toml, read by the CRI plugin and by `ctr --hosts-dir`). */
  trust(host: string, caFile: string): void;
  /** Lets the CRI plugin reach a plain-HTTP registry at `host`. */
  plainHttp(host: string): void;
  stop(): Promise<void>;
}

export async function startContainerd(): Promise<TestContainerd> {
  const dir = mkdtempSync(join(tmpdir(), 'rp-containerd-'));
  const sock = join(dir, 'containerd.sock');
  const certsDir = join(dir, 'certs.d');
  mkdirSync(certsDir);
  writeFileSync(
    join(dir, 'config.toml'),
    `version = 2
root = "${dir}/root"
state = "${dir}/state"
[grpc]
  address = "${sock}"
[plugins."io.containerd.grpc.v1.cri".registry]
  config_path = "${certsDir}"
`,
  );
  const d = startDaemon('containerd', ['--config', join(dir, 'config.toml')], join(dir, 'containerd.log'));
  const ctr = (args: string[]) => run('ctr', ['-a', sock, ...args]);
  await waitFor('containerd', async () => (await ctr(['version'])).code === 0, 30_000);
  return {
    sock,
    certsDir,
    ctr,
    trust(host: string, caFile: string) {
      mkdirSync(join(certsDir, host), { recursive: true });
      writeFileSync(join(certsDir, host, 'hosts.toml'), `server = "https://${host}"\n[host."https://${host}"]\n  capabilities = ["pull", "resolve", "push"]\n  ca = "${caFile}"\n`);
    },
    plainHttp(host: string) {
      mkdirSync(join(certsDir, host), { recursive: true });
      writeFileSync(join(certsDir, host, 'hosts.toml'), `server = "http://${host}"\n[host."http://${host}"]\n  capabilities = ["pull", "resolve"]\n`);
    },
    stop: () => d.stop(),
  };
}
