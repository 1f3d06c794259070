import { ProxyError } from './codes.js';

// Grammars from opencontainers/distribution-spec spec.md and distribution's reference package.
const PATH_COMPONENT = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*';
const NAME_RE = new RegExp(`^${PATH_COMPONENT}(?:/${PATH_COMPONENT})*$`);
const TAG_RE = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
const DIGEST_RE = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;
const HOST_RE = /^(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*|\[[0-9a-fA-F:.]+\])(?::[0-9]{1,5})?$/;
const MAX_NAME_LENGTH = 255;

/** The Docker Hub registry as written in references, and the host its API is served from. */
export const DOCKER_HUB = 'docker.io';
export const DOCKER_HUB_API_HOST = 'registry-1.docker.io';

/** Every name Docker Hub's registry goes by (references, containerd's `ns`, Docker config keys). */
const DOCKER_HUB_ALIASES: ReadonlySet<string> = new Set([DOCKER_HUB, 'index.docker.io', DOCKER_HUB_API_HOST, 'registry.hub.docker.com']);

/** A registry host in lower case, with Docker Hub's aliases folded into `docker.io`: the one list of them. */
export function normaliseRegistryHost(host: string): string {
  const h = host.toLowerCase();
  return DOCKER_HUB_ALIASES.has(h) ? DOCKER_HUB : h;
}

/** True for a repository name that follows the OCI name grammar. */
export function isValidRepositoryName(name: string): boolean {
  return name.length > 0 && name.length <= MAX_NAME_LENGTH && NAME_RE.test(name);
}

/** True for a tag that follows the OCI tag grammar. */
export function isValidTag(tag: string): boolean {
  return TAG_RE.test(tag);
}

/** True for a digest in `algorithm:encoded` form; sha256 and sha512 must have their exact hex length. */
export function isValidDigest(digest: string): boolean {
  if (!DIGEST_RE.test(digest)) return false;
  const [alg, enc] = digest.split(':', 2) as [string, string];
  if (alg === 'sha256') return /^[a-f0-9]{64}$/.test(enc);
  if (alg === 'sha512') return /^[a-f0-9]{128}$/.test(enc);
  return true;
}

/** A parsed, normalised image reference. */
export interface ImageReference {
  /** Registry host (with port), `docker.io` for Docker Hub. */
  readonly registry: string;
  /** Repository path inside the registry; Docker Hub single-segment names get `library/`. */
  readonly repository: string;
  readonly tag?: string;
  readonly digest?: string;
}

function fail(input: string, why: string): never {
  throw new ProxyError('RP_ERR_REFERENCE_INVALID', `invalid image reference ${JSON.stringify(input)}: ${why}`);
}

/**
 * Parses a reference the way docker does: `[host[:port]/]name[:tag][@digest]`. The first path
 * component is a registry host when it contains `.` or `:`, or is `localhost`. Without tag and
 * digest, the tag is `latest`.
 */
export function parseReference(input: string): ImageReference {
  let rest = input;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!isValidDigest(digest)) fail(input, 'bad digest');
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!isValidTag(tag)) fail(input, 'bad tag');
  }
  let registry = DOCKER_HUB;
  const slash = rest.indexOf('/');
  if (slash > 0) {
    const first = rest.slice(0, slash);
    if (first.includes('.') || first.includes(':') || first === 'localhost' || first.startsWith('[')) {
      if (!HOST_RE.test(first)) fail(input, 'bad registry host');
      registry = first;
      rest = rest.slice(slash + 1);
    }
  }
  if (DOCKER_HUB_ALIASES.has(registry.toLowerCase())) registry = DOCKER_HUB;
  let repository = rest;
  if (registry === DOCKER_HUB && !repository.includes('/')) repository = `library/${repository}`;
  if (!isValidRepositoryName(repository)) fail(input, 'bad repository name');
  if (tag === undefined && digest === undefined) tag = 'latest';
  return Object.freeze({ registry, repository, ...(tag === undefined ? {} : { tag }), ...(digest === undefined ? {} : { digest }) });
}

/** Formats a reference in full: `registry/repository[:tag][@digest]`. */
export function formatReference(ref: ImageReference): string {
  return `${ref.registry}/${ref.repository}${ref.tag === undefined ? '' : `:${ref.tag}`}${ref.digest === undefined ? '' : `@${ref.digest}`}`;
}
