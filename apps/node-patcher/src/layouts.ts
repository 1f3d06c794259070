import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { readFlags, type FlagsFile } from './flags.js';

export type LayoutName = 'gke' | 'eks-al2' | 'eks-al2023' | 'kubeadm';

/**
 * Where the patcher may put its own files on each layout. One table: the patcher writes only
 * under these folders, and the chart mounts exactly the host folders they lie in (HOST_MOUNTS;
 * charts/test compares the two).
 * - GKE (COS): / and /opt are read-only; /etc is rebuilt at boot; /home/kubernetes is the
 *   writable, persistent place, and /home/kubernetes/bin is remounted exec by GKE's
 *   configure.sh and is where kubelet's own credential provider (auth-provider-gcp) lives
 *   (kubernetes cluster/gce/config-default.sh AUTH_PROVIDER_GCP_LINUX_BIN_DIR).
 * - EKS AL2 / AL2023: kubelet's bin dir is /etc/eks/image-credential-provider (amazon-eks-ami
 *   nodeadm/internal/kubelet/image-credential-provider.go, AL2's kubelet.service).
 * - kubeadm: no fixed place; under /var/lib, which every node mounts writable.
 */
export interface Places {
  /** Credential-provider executables, when kubelet does not name a bin dir of its own. */
  readonly binDir: string;
  /** Our configuration files and the boot guard. */
  readonly ownDir: string;
}
export const PLACES: Readonly<Record<LayoutName, Places>> = {
  gke: { binDir: '/home/kubernetes/bin', ownDir: '/home/kubernetes/registry-proxy' },
  'eks-al2': { binDir: '/etc/eks/image-credential-provider', ownDir: '/etc/registry-proxy' },
  'eks-al2023': { binDir: '/etc/eks/image-credential-provider', ownDir: '/etc/registry-proxy' },
  kubeadm: { binDir: '/var/lib/registry-proxy/bin', ownDir: '/etc/registry-proxy' },
};
/** The patcher's state and backups (persistent on every layout). */
export const STATE_DIR = '/var/lib/registry-proxy/node-patcher';
/**
 * The host folders the DaemonSet mounts for the patcher (besides the D-Bus socket). Every file
 * the patcher writes must lie under one of them; a path outside is refused, never written into
 * the container's own filesystem.
 */
export const HOST_MOUNTS = ['/etc', '/var/lib', '/home'] as const;

export function underMounts(path: string): boolean {
  return HOST_MOUNTS.some((m) => path === m || path.startsWith(`${m}/`));
}

/** How kubelet is configured on a node, as found under the host root. */
export interface Layout {
  readonly name: LayoutName;
  /** The kubelet configuration file (KubeletConfiguration). */
  readonly config: { readonly path: string; readonly format: 'yaml' | 'json' };
  /** Where kubelet flags live; `create` is the text of a new file when the file may be absent. */
  readonly flags: { readonly path: string; readonly file: FlagsFile; readonly create?: string };
  /** Systemd drop-ins for kubelet.service. */
  readonly dropInDir: string;
  /** Unit files that may name flags in ExecStart. */
  readonly units: readonly string[];
}

export class LayoutError extends Error {}

const UNITS = ['/etc/systemd/system/kubelet.service', '/usr/lib/systemd/system/kubelet.service', '/lib/systemd/system/kubelet.service'];
const DROP_INS = '/etc/systemd/system/kubelet.service.d';

function read(root: string, path: string): string | undefined {
  const p = join(root, path);
  return existsSync(p) ? readFileSync(p, 'utf8') : undefined;
}

/** The layouts whose marker files are present. */
function candidates(root: string): Layout[] {
  const found: Layout[] = [];
  if (read(root, '/var/lib/kubelet/kubeadm-flags.env') !== undefined && read(root, '/var/lib/kubelet/config.yaml') !== undefined) {
    found.push({
      name: 'kubeadm',
      config: { path: '/var/lib/kubelet/config.yaml', format: 'yaml' },
      flags: { path: '/var/lib/kubelet/kubeadm-flags.env', file: { kind: 'env', variable: 'KUBELET_KUBEADM_ARGS' } },
      dropInDir: DROP_INS,
      units: UNITS,
    });
  }
  const gke = read(root, '/etc/default/kubelet');
  if (gke !== undefined && /KUBELET_OPTS=/.test(gke)) {
    const configFlag = readFlags(gke, { kind: 'env', variable: 'KUBELET_OPTS' })?.find(([k]) => k === 'config')?.[1];
    found.push({
      name: 'gke',
      config: { path: configFlag ?? '/home/kubernetes/kubelet-config.yaml', format: 'yaml' },
      flags: { path: '/etc/default/kubelet', file: { kind: 'env', variable: 'KUBELET_OPTS' } },
      dropInDir: DROP_INS,
      units: UNITS,
    });
  }
  if (read(root, '/etc/eks/kubelet/environment') !== undefined && read(root, '/etc/kubernetes/kubelet/config.json') !== undefined) {
    found.push({
      name: 'eks-al2023',
      config: { path: '/etc/kubernetes/kubelet/config.json', format: 'json' },
      flags: { path: '/etc/eks/kubelet/environment', file: { kind: 'env', variable: 'NODEADM_KUBELET_ARGS' } },
      dropInDir: DROP_INS,
      units: UNITS,
    });
  }
  if (read(root, '/etc/kubernetes/kubelet/kubelet-config.json') !== undefined && read(root, '/etc/eks/bootstrap.sh') !== undefined) {
    found.push({
      name: 'eks-al2',
      config: { path: '/etc/kubernetes/kubelet/kubelet-config.json', format: 'json' },
      flags: { path: `${DROP_INS}/30-kubelet-extra-args.conf`, file: { kind: 'systemd', variable: 'KUBELET_EXTRA_ARGS' }, create: '[Service]\n' },
      dropInDir: DROP_INS,
      units: UNITS,
    });
  }
  return found;
}

export function parseKubeletConfig(text: string, format: 'yaml' | 'json', path: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = format === 'json' ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new LayoutError(`${path}: not valid ${format.toUpperCase()}: ${(err as Error).message.split('\n')[0]}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v) || (v as { kind?: unknown }).kind !== 'KubeletConfiguration') {
    throw new LayoutError(`${path}: not a KubeletConfiguration`);
  }
  return v as Record<string, unknown>;
}

/** Finds exactly one known layout and checks its files are what that layout writes; refuses anything else. */
export function detectLayout(root: string): Layout {
  const found = candidates(root);
  if (found.length === 0)
    throw new LayoutError(
      'unknown node layout: none of GKE (/etc/default/kubelet), EKS AL2 (/etc/kubernetes/kubelet/kubelet-config.json), EKS AL2023 (/etc/eks/kubelet/environment) or kubeadm (/var/lib/kubelet/kubeadm-flags.env) was found',
    );
  if (found.length > 1) throw new LayoutError(`ambiguous node layout: looks like ${found.map((l) => l.name).join(' and ')}`);
  const l = found[0] as Layout;
  const config = read(root, l.config.path);
  if (config === undefined) throw new LayoutError(`${l.name}: kubelet configuration ${l.config.path} is missing`);
  parseKubeletConfig(config, l.config.format, l.config.path);
  const flags = read(root, l.flags.path);
  if (flags === undefined && l.flags.create === undefined) throw new LayoutError(`${l.name}: ${l.flags.path} is missing`);
  if (flags !== undefined && readFlags(flags, l.flags.file) === undefined && l.flags.create === undefined) {
    throw new LayoutError(`${l.name}: ${l.flags.path} does not set ${l.flags.file.variable} exactly once`);
  }
  return l;
}

/** The unit files' ExecStart text and the flags file, for flags set outside our reach. */
export function allFlagText(root: string, l: Layout): string {
  return [...l.units.map((u) => read(root, u) ?? ''), read(root, l.flags.path) ?? ''].join('\n');
}
