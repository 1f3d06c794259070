import { existsSync, readFileSync, statSync } from 'node:fs';
import { ProxyError, upstreamCredentialsSchema } from '@registry-proxy/registry-core';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';

const url = z.url({ protocol: /^https?$/ });

/**
 * Upstream credentials (registry-core's schema, shared with the proxy), plus node identities
 * that only make sense on a node: instance identity documents for a registry-proxy whose
 * `auth` accepts them (auth-iid, which registry-core cannot depend on).
 */
const provider = z.discriminatedUnion('type', [
  ...upstreamCredentialsSchema.options,
  z.strictObject({ type: z.literal('aws-iid'), imdsUrl: url.optional(), nonceFile: z.string().min(1).default('/var/lib/registry-proxy/iid-nonce') }),
  z.strictObject({ type: z.literal('gcp-iid'), audience: z.string().min(1), metadataUrl: url.optional() }),
  z.strictObject({ type: z.literal('azure-iid'), imdsUrl: url.optional(), nonceFile: z.string().min(1).default('/var/lib/registry-proxy/azure-iid-nonce') }),
]);
export type ProviderConfig = z.infer<typeof provider>;

const hostGlob = z.string().regex(/^[A-Za-z0-9.*-]+(?::\d{1,5})?$/, 'a registry host, * for one label: registry.example.com, *.gcr.io');

export const ConfigSchema = z.strictObject({
  /** The unix socket kubelet's --image-service-endpoint points at. */
  socket: z.string().min(1).default('/run/registry-proxy/image-service.sock'),
  /** Octal mode of the socket, as a string ("0600"). */
  socketMode: z
    .string()
    .regex(/^0?[0-7]{3}$/, 'an octal mode such as "0600"')
    .default('0600')
    .transform((m) => parseInt(m, 8)),
  backend: z.discriminatedUnion('type', [
    /** Docker Engine: for nodes whose runtime is Docker Engine through cri-dockerd. */
    z.strictObject({ type: z.literal('docker'), socket: z.string().min(1).default('/var/run/docker.sock') }),
    /** A CRI image service (containerd, CRI-O): for containerd and CRI-O nodes (GKE, EKS). */
    z.strictObject({ type: z.literal('cri'), socket: z.string().min(1).default('/run/containerd/containerd.sock') }),
  ]),
  /** Health and metrics, on a local address. */
  health: z.strictObject({ host: z.string().min(1).default('127.0.0.1'), port: z.number().int().min(0).max(65535).default(9464) }).prefault({}),
  /** The first rule whose hosts match the image's registry decides the credentials. */
  credentials: z
    .array(
      z
        .strictObject({
          hosts: z.array(hostGlob).min(1),
          /** The node's credentials for these hosts. */
          provider: provider.optional(),
          /** Replace credentials kubelet sent itself (default: kubelet's win). */
          override: z.boolean().default(false),
          /**
           * Per-pod identity (KEP-4412, credential provider only): when kubelet hands over the pod's
           * service-account token, answer with it as the password of `username`, for a proxy whose
           * OIDC issuer is the cluster's service-account issuer. Pulls without a token get the
           * node's credentials (`provider`) only with `nodeFallback: true`; otherwise none.
           */
          serviceAccountToken: z
            .strictObject({
              username: z
                .string()
                .min(1)
                .regex(/^[^:]+$/, 'must not contain ":"')
                .default('kubernetes'),
              nodeFallback: z.boolean().default(false),
            })
            .optional(),
        })
        .superRefine((r, ctx) => {
          if (!r.provider && !r.serviceAccountToken) ctx.addIssue({ code: 'custom', path: ['provider'], message: 'a rule needs a provider, serviceAccountToken, or both' });
          if (r.serviceAccountToken?.nodeFallback && !r.provider)
            ctx.addIssue({ code: 'custom', path: ['serviceAccountToken', 'nodeFallback'], message: 'falls back to the node credentials of provider, which this rule does not have' });
        }),
    )
    .default([]),
  log: z.strictObject({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info') }).prefault({}),
});
export type Config = z.infer<typeof ConfigSchema>;

/** Parses and validates the configuration; errors name each bad key. */
export function parseConfig(text: string, source: string): Config {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (cause) {
    throw new ProxyError('RP_ERR_CONFIG_INVALID', `${source}: not valid YAML: ${(cause as Error).message}`, { cause });
  }
  const r = ConfigSchema.safeParse(raw ?? {});
  if (!r.success) {
    const lines = r.error.issues.flatMap((i) =>
      i.code === 'unrecognized_keys' ? i.keys.map((k) => `${source}: ${[...i.path, k].join('.')}: unknown key`) : [`${source}: ${i.path.join('.') || '(top level)'}: ${i.message}`],
    );
    throw new ProxyError('RP_ERR_CONFIG_INVALID', `invalid configuration\n${lines.join('\n')}`);
  }
  return r.data;
}

export function loadConfig(path: string): Config {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (cause) {
    throw new ProxyError('RP_ERR_CONFIG_READ', `cannot read configuration file ${path}: ${(cause as NodeJS.ErrnoException).code ?? cause}`, { cause });
  }
  return parseConfig(text, path);
}

/** Refuses configurations that cannot work on this node, before anything listens. */
export function checkNode(config: Config): void {
  const b = config.backend;
  if (b.socket === config.socket) throw new ProxyError('RP_ERR_CONFIG_INVALID', "backend.socket: is the image service's own socket; point it at the container runtime");
  if (!existsSync(b.socket) || !statSync(b.socket).isSocket()) {
    throw new ProxyError(
      'RP_ERR_CONFIG_INVALID',
      b.type === 'docker'
        ? `backend.socket: no Docker Engine socket at ${b.socket}; on containerd or CRI-O nodes (GKE, EKS) use backend type cri, or images land where the runtime never looks`
        : `backend.socket: no CRI socket at ${b.socket}; give the container runtime's socket (containerd: /run/containerd/containerd.sock, CRI-O: /var/run/crio/crio.sock)`,
    );
  }
}
