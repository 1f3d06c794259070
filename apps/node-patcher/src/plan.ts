import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isMap, parseDocument, stringify, type YAMLSeq } from 'yaml';
import { setTopLevelField } from './edit.js';
import { sha256 } from './files.js';
import { readFlags, setFlags } from './flags.js';
import { allFlagText, LayoutError, parseKubeletConfig, HOST_MOUNTS, PLACES, STATE_DIR, underMounts, type Layout } from './layouts.js';

export type Mode = 'image-service' | 'credential-provider' | 'mirror';

export interface PatchOptions {
  readonly mode: Mode;
  /** Kubelet's version (`v1.30.2`): 1.27+ takes imageServiceEndpoint in its config file. */
  readonly kubeletVersion?: string;
  readonly socket?: string;
  /** credential-provider: the images the plugin answers for (kubelet matchImages). */
  readonly matchImages?: readonly string[];
  /** credential-provider: the plugin's own configuration file, as the DaemonSet mounts it on the host. */
  readonly providerArgs?: readonly string[];
  /** credential-provider: the plugin executable to install into kubelet's bin dir (a path in this container). */
  readonly providerBinary?: string;
  /** credential-provider: the plugin's credential rules (a path in this container), installed on the host (0600) and passed as `--config`. */
  readonly providerRules?: string;
  /** mirror: registry host -> the proxy's URL. */
  readonly mirrors?: Readonly<Record<string, string>>;
  readonly certsDir?: string;
  readonly containerdConfig?: string;
}

/** One file the patch writes: absent before (created) or replaced. */
export interface FileChange {
  readonly path: string;
  readonly after: Buffer;
  readonly mode?: number;
}

export const DEFAULT_SOCKET = '/run/registry-proxy/image-service.sock';
export { STATE_DIR };
export const PROVIDER_NAME = 'registry-proxy-credential-provider';
/** Our files on a layout (see PLACES). */
export const ownFiles = (l: Layout['name']) => ({
  providerConfig: `${PLACES[l].ownDir}/credential-provider.yaml`,
  providerRules: `${PLACES[l].ownDir}/credential-provider-rules.yaml`,
  guard: `${PLACES[l].ownDir}/kubelet-guard.sh`,
});

function minor(version: string | undefined): number | undefined {
  const m = /^v?1\.(\d+)\./.exec(version ?? '');
  return m ? Number(m[1]) : undefined;
}

function read(root: string, path: string): string | undefined {
  const p = join(root, path);
  return existsSync(p) ? readFileSync(p, 'utf8') : undefined;
}

/** The kubelet config with one field set, every other byte kept. */
function setConfigField(text: string, format: 'yaml' | 'json', field: string, value: string, path: string): string {
  try {
    return setTopLevelField(text, format, field, value);
  } catch (err) {
    throw new LayoutError(`${path}: ${(err as Error).message}`);
  }
}

/** Refuses a path the DaemonSet does not mount: writing it would land in the container, not on the host. */
function checkMounted(changes: FileChange[]): FileChange[] {
  for (const c of changes) if (!underMounts(c.path)) throw new LayoutError(`${c.path} is outside the host folders the DaemonSet mounts (${HOST_MOUNTS.join(', ')})`);
  return changes;
}

/** The changes that put `opts.mode` in place on this layout. Reads only; writes nothing. */
export function planChanges(root: string, layout: Layout, opts: PatchOptions): FileChange[] {
  return checkMounted(planAll(root, layout, opts));
}

function planAll(root: string, layout: Layout, opts: PatchOptions): FileChange[] {
  const own = ownFiles(layout.name);
  const socket = `unix://${opts.socket ?? DEFAULT_SOCKET}`;
  if (opts.mode === 'mirror') return planMirror(root, opts);
  const changes: FileChange[] = [];
  if (opts.mode === 'image-service') {
    const v = minor(opts.kubeletVersion);
    if (v === undefined) throw new LayoutError('image-service mode needs the kubelet version (--kubelet-version, or read from the Node)');
    const kubelet: FileChange[] = [];
    if (v >= 27) {
      const text = read(root, layout.config.path) as string;
      parseKubeletConfig(text, layout.config.format, layout.config.path);
      kubelet.push({ path: layout.config.path, after: Buffer.from(setConfigField(text, layout.config.format, 'imageServiceEndpoint', socket, layout.config.path)) });
    } else {
      if (layout.name === 'eks-al2' || layout.name === 'eks-al2023')
        throw new LayoutError(`${layout.name}: kubelet ${opts.kubeletVersion} takes the image service only as a flag in a place the guard cannot undo; use credential-provider or mirror mode`);
      kubelet.push(flagChange(root, layout, { 'image-service-endpoint': socket }));
    }
    // Kubelet must never wait for a socket nothing serves (after a reboot kubelet starts before
    // any pod): before each kubelet start, a guard puts the original files back when the
    // image service's socket is not there. The guard goes in first, so that a patcher killed
    // half-way never leaves kubelet pointed at the socket without it (revert runs backwards).
    const dropIn = `${layout.dropInDir}/05-registry-proxy-guard.conf`;
    const firstKubeletIndex = 2;
    changes.push({ path: own.guard, after: Buffer.from(guardScript(opts.socket ?? DEFAULT_SOCKET, kubelet, firstKubeletIndex, dropIn, own.guard)), mode: 0o755 });
    changes.push({ path: dropIn, after: Buffer.from(`# Written by registry-proxy node-patcher; removed by "node-patcher revert".\n[Service]\nExecStartPre=-/bin/sh ${own.guard}\n`) });
    changes.push(...kubelet);
    return changes;
  }
  // credential-provider: join an existing plugin configuration (EKS ships one for ECR) or set the flags.
  const flagText = allFlagText(root, layout);
  const named = extractFlag(flagText, 'image-credential-provider-config');
  // Our own flags (from an earlier patch of this node) do not count as an existing configuration.
  const fromUnit = named === own.providerConfig ? undefined : named;
  const binFromUnit = extractFlag(flagText, 'image-credential-provider-bin-dir');
  const provider = {
    name: PROVIDER_NAME,
    matchImages: [...(opts.matchImages ?? [])],
    defaultCacheDuration: '5m',
    apiVersion: 'credentialprovider.kubelet.k8s.io/v1',
    ...(opts.providerArgs && opts.providerArgs.length > 0 ? { args: [...opts.providerArgs] } : opts.providerRules ? { args: ['--config', own.providerRules] } : {}),
  };
  if (opts.providerRules) {
    let rules: Buffer;
    try {
      rules = readFileSync(opts.providerRules);
    } catch (err) {
      throw new LayoutError(`credential provider rules ${opts.providerRules}: ${(err as NodeJS.ErrnoException).code}`);
    }
    changes.push({ path: own.providerRules, after: rules, mode: 0o600 });
  }
  if (provider.matchImages.length === 0) throw new LayoutError('credential-provider mode needs at least one --match-image');
  const binary = (dir: string): FileChange[] => {
    if (!opts.providerBinary) return [];
    let bytes: Buffer;
    try {
      bytes = readFileSync(opts.providerBinary);
    } catch (err) {
      throw new LayoutError(`credential provider binary ${opts.providerBinary}: ${(err as NodeJS.ErrnoException).code}`);
    }
    return [{ path: `${dir}/${PROVIDER_NAME}`, after: bytes, mode: 0o755 }];
  };
  if (fromUnit) {
    const text = read(root, fromUnit);
    if (text === undefined) throw new LayoutError(`kubelet names ${fromUnit} as its credential provider config, but it is missing`);
    changes.push({ path: fromUnit, after: Buffer.from(mergeProvider(text, fromUnit, provider)) });
    // The executable first: kubelet must not read a configuration naming a plugin that is not there yet.
    return [...(binFromUnit ? binary(binFromUnit) : []), ...changes];
  }
  const binDir = PLACES[layout.name].binDir;
  changes.unshift(...binary(binDir));
  changes.push({
    path: own.providerConfig,
    after: Buffer.from(stringify({ apiVersion: 'kubelet.config.k8s.io/v1', kind: 'CredentialProviderConfig', providers: [provider] })),
  });
  changes.push(flagChange(root, layout, { 'image-credential-provider-config': own.providerConfig, 'image-credential-provider-bin-dir': binDir }));
  return changes;
}

function extractFlag(text: string, name: string): string | undefined {
  const m = new RegExp(`--${name}(?:=|\\s+)([^\\s'"\\\\]+)`).exec(text);
  return m?.[1];
}

function mergeProvider(text: string, path: string, provider: Record<string, unknown>): string {
  const json = path.endsWith('.json');
  let cfg: { kind?: unknown; providers?: unknown };
  try {
    cfg = (json ? JSON.parse(text) : parseDocument(text).toJS()) as typeof cfg;
  } catch {
    throw new LayoutError(`${path}: not valid ${json ? 'JSON' : 'YAML'}`);
  }
  if (cfg.kind !== 'CredentialProviderConfig' || !Array.isArray(cfg.providers)) throw new LayoutError(`${path}: not a CredentialProviderConfig`);
  if (json) {
    const providers = (cfg.providers as Array<{ name?: unknown }>).filter((p) => p.name !== PROVIDER_NAME);
    const indent = /^\{\n( +|\t+)"/.exec(text)?.[1] ?? '  ';
    return `${JSON.stringify({ ...cfg, providers: [...providers, provider] }, null, indent)}\n`;
  }
  // YAML through the Document API, keeping comments and the file's list indentation.
  const doc = parseDocument(text);
  const seq = doc.get('providers', true) as YAMLSeq;
  seq.items = seq.items.filter((item) => !(isMap(item) && item.get('name') === PROVIDER_NAME));
  seq.add(doc.createNode(provider));
  return doc.toString({ indentSeq: !/^\S[^\n]*:\s*\n- /m.test(text) });
}

function flagChange(root: string, layout: Layout, flags: Record<string, string>): FileChange {
  const current = read(root, layout.flags.path);
  let after: string;
  try {
    after = setFlags(current ?? '', layout.flags.file, flags, current === undefined || readFlags(current, layout.flags.file) === undefined ? (current ?? layout.flags.create) : undefined);
  } catch (err) {
    throw new LayoutError(`${layout.flags.path}: ${(err as Error).message}`);
  }
  return { path: layout.flags.path, after: Buffer.from(after) };
}

/**
 * The folders containerd's CRI reads hosts.toml from (`config_path`, a list joined with ":"), or
 * "mirrors" when config.toml configures `registry.mirrors` instead (containerd then ignores
 * config_path, and a change needs a containerd restart).
 * - EKS: `config_path = "/etc/containerd/certs.d:/etc/docker/certs.d"` (amazon-eks-ami
 *   nodeadm/internal/containerd/config.template.toml, config2.template.toml for containerd 2,
 *   and the AL2 AMI's templates/al2/runtime/containerd-config.toml).
 * - GKE / COS: `[plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]` with
 *   mirror.gcr.io (kubernetes cluster/gce/gci/configure-helper.sh, setup-containerd).
 */
export function containerdRegistry(toml: string): { readonly configPaths: string[] } | 'mirrors' {
  let section = '';
  const paths: string[] = [];
  let mirrors = false;
  for (const raw of toml.split('\n')) {
    const line = raw.replace(/#.*$/, '').trim();
    const header = /^\[+\s*([^\]]+?)\s*\]+$/.exec(line);
    if (header) {
      section = header[1] as string;
      if (/\.registry\.mirrors\b/.test(section.replace(/["']/g, ''))) mirrors = true;
      continue;
    }
    const cp = /^config_path\s*=\s*(["'])(.*)\1$/.exec(line);
    if (cp && /\.registry$/.test(section.replace(/["']/g, ''))) paths.push(...(cp[2] as string).split(':').filter(Boolean));
    if (/^mirrors\s*=/.test(line) && /\.registry$/.test(section.replace(/["']/g, ''))) mirrors = true;
  }
  return mirrors ? 'mirrors' : { configPaths: paths };
}

function planMirror(root: string, opts: PatchOptions): FileChange[] {
  const cfgPath = opts.containerdConfig ?? '/etc/containerd/config.toml';
  const cfg = read(root, cfgPath);
  if (cfg === undefined) throw new LayoutError(`mirror mode: ${cfgPath} is missing`);
  const reg = containerdRegistry(cfg);
  if (reg === 'mirrors') {
    throw new LayoutError(
      `mirror mode: ${cfgPath} configures registry.mirrors (as GKE does), so containerd does not read hosts.toml folders, and changing it needs a containerd restart; use credential-provider mode on this node`,
    );
  }
  // The first folder in the list wins when two hold the same registry: write there.
  const certsDir = opts.certsDir ?? reg.configPaths[0];
  if (certsDir === undefined || !reg.configPaths.includes(certsDir)) {
    throw new LayoutError(`mirror mode: containerd does not read ${certsDir ?? 'a certs.d folder'} (no registry config_path naming it in ${cfgPath})`);
  }
  const mirrors = Object.entries(opts.mirrors ?? {});
  if (mirrors.length === 0) throw new LayoutError('mirror mode needs at least one --mirror registry=url');
  return mirrors.map(([registry, url]) => {
    if (!/^[a-z0-9.-]+(:\d+)?$/i.test(registry)) throw new LayoutError(`mirror: bad registry host ${registry}`);
    if (!/^https?:\/\/[^\s"]+$/.test(url)) throw new LayoutError(`mirror: bad URL ${url}`);
    const upstream = registry === 'docker.io' ? 'https://registry-1.docker.io' : `https://${registry}`;
    // containerd tries the proxy first and falls back to the registry itself: a proxy that is
    // down slows pulls but does not stop them. containerd sends the proxy no credentials.
    return {
      path: `${certsDir}/${registry}/hosts.toml`,
      after: Buffer.from(`# Written by registry-proxy node-patcher; removed by "node-patcher revert".\nserver = "${upstream}"\n\n[host."${url}"]\n  capabilities = ["pull", "resolve"]\n`),
    };
  });
}

/**
 * The boot guard. A file is put back only while it still holds what the patch wrote: a file the
 * provider rewrote at boot (nodeadm, GKE's configure scripts) is the provider's new baseline
 * and already lacks the patch, and copying an old backup over it would undo the provider.
 */
function guardScript(socket: string, kubelet: readonly FileChange[], firstIndex: number, dropIn: string, self: string): string {
  const restores = kubelet.map((c, i) => `restore ${firstIndex + i} '${c.path}' ${sha256(c.after)}`).join('\n');
  return `#!/bin/sh
# Written by registry-proxy node-patcher. Runs before every kubelet start: when the image service
# socket is not there (a reboot: kubelet starts before any pod), it puts back the kubelet files
# as they were before the patch, so kubelet uses its own runtime. The DaemonSet patches again
# once the image service runs.
[ -S '${socket}' ] && exit 0
state='${STATE_DIR}'
restore() {
  rm -f "$2.registry-proxy.tmp" # a patcher killed on this file's rename left it
  [ -f "$2" ] || return 0
  sum=$(sha256sum < "$2")
  [ "\${sum%% *}" = "$3" ] || return 0
  if [ -f "$state/backup/$1" ]; then cp -p "$state/backup/$1" "$2"; else rm -f "$2"; fi
}
${restores}
rm -f '${dropIn}' '${self}' '${dropIn}.registry-proxy.tmp'
dirs=''
[ -f "$state/created-dirs" ] && dirs=$(cat "$state/created-dirs")
rm -rf "$state"
for d in $dirs; do [ -d "$d" ] && rmdir "$d"; done
echo "registry-proxy: image service socket missing; kubelet files restored" >&2
exit 0
`;
}
