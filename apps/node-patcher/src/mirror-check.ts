/**
 * Mirror mode is anonymous-only: containerd sends a hosts.toml mirror no credentials, and its
 * CRI drops kubelet's pull credentials when the mirror's host differs from the image's. So
 * before writing hosts.toml, the patcher pulls as containerd would, without credentials: the
 * manifest of a probe image through the mirror (`/v2/<repo>/manifests/<tag>?ns=<registry>`),
 * following a Bearer challenge to an anonymous token (Docker registry token protocol). A mirror
 * that cannot serve that is refused, naming credential-provider mode instead.
 */
export class MirrorCheckError extends Error {}

const MANIFESTS = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

function challenge(header: string | null): { realm: string; params: Record<string, string> } | undefined {
  const m = /^Bearer\s+(.*)$/i.exec(header ?? '');
  if (!m) return undefined;
  const params: Record<string, string> = {};
  for (const p of (m[1] as string).matchAll(/(\w+)="([^"]*)"/g)) params[p[1] as string] = p[2] as string;
  return params['realm'] ? { realm: params['realm'], params } : undefined;
}

/** `repo:tag` of the probe image, e.g. `library/pause:3.9`. */
export async function checkAnonymousPull(mirrorUrl: string, registry: string, probe: string, timeoutMs = 10_000): Promise<void> {
  const at = probe.lastIndexOf(':');
  const [repo, tag] = at > 0 && !probe.slice(at).includes('/') ? [probe.slice(0, at), probe.slice(at + 1)] : [probe, 'latest'];
  const url = `${mirrorUrl.replace(/\/+$/, '')}/v2/${repo}/manifests/${tag}?ns=${encodeURIComponent(registry)}`;
  const head = (auth?: string) => fetch(url, { method: 'HEAD', headers: { accept: MANIFESTS, ...(auth ? { authorization: auth } : {}) }, signal: AbortSignal.timeout(timeoutMs) });
  let res: Response;
  try {
    res = await head();
    if (res.status === 401) {
      const c = challenge(res.headers.get('www-authenticate'));
      if (!c)
        throw new MirrorCheckError(
          `the mirror ${mirrorUrl} asks for credentials (${res.headers.get('www-authenticate') ?? 'no challenge'}), which containerd does not send to mirrors; use credential-provider mode`,
        );
      const q = new URLSearchParams({ ...(c.params['service'] ? { service: c.params['service'] } : {}), scope: c.params['scope'] ?? `repository:${repo}:pull` });
      const tok = await fetch(`${c.realm}${c.realm.includes('?') ? '&' : '?'}${q}`, { signal: AbortSignal.timeout(timeoutMs) });
      const body = tok.status === 200 ? ((await tok.json()) as { token?: string; access_token?: string }) : {};
      const token = body.token ?? body.access_token;
      if (!token)
        throw new MirrorCheckError(
          `the mirror ${mirrorUrl} gives no anonymous token for ${repo} (HTTP ${tok.status}); containerd pulls from mirrors without credentials; allow anonymous pulls for the mirrored images or use credential-provider mode`,
        );
      res = await head(`Bearer ${token}`);
    }
  } catch (err) {
    if (err instanceof MirrorCheckError) throw err;
    throw new MirrorCheckError(`the mirror ${mirrorUrl} did not answer: ${(err as Error).message}`);
  }
  if (res.status !== 200)
    throw new MirrorCheckError(
      `an anonymous pull of ${registry}/${repo}:${tag} through the mirror ${mirrorUrl} got HTTP ${res.status}; containerd pulls from mirrors without credentials; allow anonymous pulls for the mirrored images or use credential-provider mode`,
    );
}
