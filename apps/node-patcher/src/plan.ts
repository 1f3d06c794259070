import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseDocument, stringify } from 'yaml';
import { readFlags, setFlags } from './flags.js';
import { allFlagText, LayoutError, parseKubeletConfig, type Layout } from './layouts.js';

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
export const STATE_DIR = '/var/lib/registry-proxy/node-patcher';
export const PROVIDER_NAME = 'registry-proxy-credential-provider';
export const PROVIDER_CONFIG = '/etc/registry-proxy/credential-provider.yaml';
export const PROVIDER_BIN_DIR = '/opt/registry-proxy/bin';
export const GUARD_SCRIPT = '/etc/registry-proxy/kubelet-guard.sh';
export const PROVIDER_RULES = '/etc/registry-proxy/credential-provider-rules.yaml';

function minor(version: string | undefined): number | undefined {
  const m = /^v?1\.(\d+)\./.exec(version ?? '');
  return m ? Number(m[1]) : undefined;
}

function read(root: string, path: string): string | undefined {
  const p = join(root, path);
  return existsSync(p) ? readFileSync(p, 'utf8') : undefined;
}

/** The kubelet config with one field set, keeping the file's format (and YAML comments). */
function setConfigField(text: string, format: 'yaml' | 'json', field: string, value: string): string {
  if (format === 'json') {
    const obj = JSON.parse(text) as Record<string, unknown>;
    obj[field] = value;
    const indent = /^\{\n(\s+)"/.exec(text)?.[1] ?? '  ';
    return `${JSON.stringify(obj, null, indent)}\n`;
  }
  const doc = parseDocument(text);
  doc.set(field, value);
  return doc.toString();
}

/** The changes that put `opts.mode` in place on this layout. Reads only; writes nothing. */
export function planChanges(root: string, layout: Layout, opts: PatchOptions): FileChange[] {
  const socket = `unix://${opts.socket ?? DEFAULT_SOCKET}`;
  if (opts.mode === 'mirror') return planMirror(root, opts);
  const changes: FileChange[] = [];
  if (opts.mode === 'image-service') {
    const v = minor(opts.kubeletVersion);
    if (v === undefined) throw new LayoutError('image-service mode needs the kubelet version (--kubelet-version, or read from the Node)');
    if (v >= 27) {
      const text = read(root, layout.config.path) as string;
      parseKubeletConfig(text, layout.config.format, layout.config.path);
      changes.push({ path: layout.config.path, after: Buffer.from(setConfigField(text, layout.config.format, 'imageServiceEndpoint', socket)) });
    } else {
      if (layout.name === 'eks-al2' || layout.name === 'eks-al2023') throw new LayoutError(`${layout.name}: kubelet ${opts.kubeletVersion} takes the image service only as a flag in a place the guard cannot undo; use credential-provider or mirror mode`);
      changes.push(flagChange(root, layout, { 'image-service-endpoint': socket }));
    }
    // Kubelet must never wait for a socket nothing serves (after a reboot kubelet starts before
    // any pod): before each kubelet start, a guard puts the original files back when the
    // image service's socket is not there.
    const dropIn = `${layout.dropInDir}/05-registry-proxy-guard.conf`;
    changes.push({ path: GUARD_SCRIPT, after: Buffer.from(guardScript(opts.socket ?? DEFAULT_SOCKET, changes.map((c) => c.path), dropIn)), mode: 0o755 });
    changes.push({ path: dropIn, after: Buffer.from(`# Written by registry-proxy node-patcher; removed by "node-patcher revert".\n[Service]\nExecStartPre=-/bin/sh ${GUARD_SCRIPT}\n`) });
    return changes;
  }
  // credential-provider: join an existing plugin configuration (EKS ships one for ECR) or set the flags.
  const flagText = allFlagText(root, layout);
  const named = extractFlag(flagText, 'image-credential-provider-config');
  // Our own flags (from an earlier patch of this node) do not count as an existing configuration.
  const fromUnit = named === PROVIDER_CONFIG ? undefined : named;
  const binFromUnit = extractFlag(flagText, 'image-credential-provider-bin-dir');
  const provider = {
    name: PROVIDER_NAME,
    matchImages: [...(opts.matchImages ?? [])],
    defaultCacheDuration: '5m',
    apiVersion: 'credentialprovider.kubelet.k8s.io/v1',
    ...(opts.providerArgs && opts.providerArgs.length > 0 ? { args: [...opts.providerArgs] } : opts.providerRules ? { args: ['--config', PROVIDER_RULES] } : {}),
  };
  if (opts.providerRules) {
    let rules: Buffer;
    try {
      rules = readFileSync(opts.providerRules);
    } catch (err) {
      throw new LayoutError(`credential provider rules ${opts.providerRules}: ${(err as NodeJS.ErrnoException).code}`);
    }
    changes.push({ path: PROVIDER_RULES, after: rules, mode: 0o600 });
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
    if (binFromUnit) changes.push(...binary(binFromUnit));
    return changes.concat(binDirNote(binFromUnit));
  }
  changes.push({
    path: PROVIDER_CONFIG,
    after: Buffer.from(stringify({ apiVersion: 'kubelet.config.k8s.io/v1', kind: 'CredentialProviderConfig', providers: [provider] })),
  });
  changes.push(flagChange(root, layout, { 'image-credential-provider-config': PROVIDER_CONFIG, 'image-credential-provider-bin-dir': PROVIDER_BIN_DIR }));
  changes.push(...binary(PROVIDER_BIN_DIR));
  return changes;
}

/** Where the plugin binary must go when kubelet already has a bin dir (recorded for the operator). */
function binDirNote(dir: string | undefined): FileChange[] {
  return dir ? [{ path: `${STATE_DIR}/provider-bin-dir`, after: Buffer.from(`${dir}\n`) }] : [];
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
  const providers = (cfg.providers as Array<{ name?: unknown }>).filter((p) => p.name !== PROVIDER_NAME);
  const out = { ...cfg, providers: [...providers, provider] };
  return json ? `${JSON.stringify(out, null, 2)}\n` : stringify(out);
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

function planMirror(root: string, opts: PatchOptions): FileChange[] {
  const certsDir = opts.certsDir ?? '/etc/containerd/certs.d';
  const cfgPath = opts.containerdConfig ?? '/etc/containerd/config.toml';
  const cfg = read(root, cfgPath);
  if (cfg === undefined) throw new LayoutError(`mirror mode: ${cfgPath} is missing`);
  if (!new RegExp(`config_path\\s*=\\s*["']${certsDir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}["']`).test(cfg)) {
    throw new LayoutError(`mirror mode: containerd does not read ${certsDir} (no config_path = "${certsDir}" in ${cfgPath})`);
  }
  const mirrors = Object.entries(opts.mirrors ?? {});
  if (mirrors.length === 0) throw new LayoutError('mirror mode needs at least one --mirror registry=url');
  return mirrors.map(([registry, url]) => {
    if (!/^[a-z0-9.-]+(:\d+)?$/i.test(registry)) throw new LayoutError(`mirror: bad registry host ${registry}`);
    if (!/^https?:\/\/[^\s"]+$/.test(url)) throw new LayoutError(`mirror: bad URL ${url}`);
    const upstream = registry === 'docker.io' ? 'https://registry-1.docker.io' : `https://${registry}`;
    // containerd tries the proxy first and falls back to the registry itself: a proxy that is
    // down slows pulls but does not stop them.
    return {
      path: `${certsDir}/${registry}/hosts.toml`,
      after: Buffer.from(`# Written by registry-proxy node-patcher; removed by "node-patcher revert".\nserver = "${upstream}"\n\n[host."${url}"]\n  capabilities = ["pull", "resolve"]\n`),
    };
  });
}

function guardScript(socket: string, files: readonly string[], dropIn: string): string {
  const restores = files.map((f, i) => `  restore ${i} '${f}'`).join('\n');
  return `#!/bin/sh
# Written by registry-proxy node-patcher. Runs before every kubelet start: when the image service
# socket is not there (a reboot: kubelet starts before any pod), it puts back the kubelet files
# as they were before the patch, so kubelet uses its own runtime. The DaemonSet patches again
# once the image service runs.
[ -S '${socket}' ] && exit 0
state='${STATE_DIR}'
restore() {
  if [ -f "$state/backup/$1" ]; then cp -p "$state/backup/$1" "$2"; else rm -f "$2"; fi
}
${restores}
rm -rf "$state" '${dropIn}' "$0"
echo "registry-proxy: image service socket missing; kubelet files restored" >&2
exit 0
`;
}
