import { RegistryError } from './errors.js';
import { isValidDigest, isValidRepositoryName, isValidTag } from './reference.js';

/** A registry API endpoint, parsed from the path under `/v2`. */
export type Endpoint =
  | { readonly kind: 'base' }
  | { readonly kind: 'catalog' }
  | { readonly kind: 'manifest'; readonly name: string; readonly reference: string }
  | { readonly kind: 'blob'; readonly name: string; readonly digest: string }
  /** `session` is the upload's id from the Location (absent when starting one with POST). */
  | { readonly kind: 'upload'; readonly name: string; readonly session?: string }
  | { readonly kind: 'tags'; readonly name: string };

const UPLOAD = /^\/(.+)\/blobs\/uploads\/?([^/]*)$/;
/** Upload ids are opaque to clients; registries use UUIDs or base64url-like strings. */
const SESSION = /^[A-Za-z0-9._~=+:-]{1,512}$/;
const MANIFEST = /^\/(.+)\/manifests\/([^/]+)$/;
const BLOB = /^\/(.+)\/blobs\/([^/]+)$/;
const TAGS = /^\/(.+)\/tags\/list$/;

function checkName(name: string): string {
  if (!isValidRepositoryName(name)) throw new RegistryError('NAME_INVALID', { detail: { name: name.slice(0, 300) } });
  return name;
}

/**
 * Parses the path below `/v2` (e.g. `/team/app/manifests/1`), unescaped: the name and reference
 * grammars have no '%', so percent-encoded tricks and `..` segments are refused as invalid
 * names, tags or digests. Throws a {@link RegistryError} for anything that is not an endpoint.
 */
export function parseApiPath(path: string): Endpoint {
  if (path === '' || path === '/') return { kind: 'base' };
  if (path === '/_catalog') return { kind: 'catalog' };
  let m = UPLOAD.exec(path);
  if (m) {
    const name = checkName(m[1] as string);
    const session = m[2] as string;
    if (session === '') return { kind: 'upload', name };
    if (!SESSION.test(session) || /^\.+$/.test(session)) throw new RegistryError('BLOB_UPLOAD_UNKNOWN', { message: 'invalid upload id' });
    return { kind: 'upload', name, session };
  }
  m = MANIFEST.exec(path);
  if (m) {
    const reference = m[2] as string;
    const name = checkName(m[1] as string);
    if (reference.includes(':') ? !isValidDigest(reference) : !isValidTag(reference)) {
      throw new RegistryError(reference.includes(':') ? 'DIGEST_INVALID' : 'TAG_INVALID', { message: 'invalid tag or digest' });
    }
    return { kind: 'manifest', name, reference };
  }
  m = BLOB.exec(path);
  if (m) {
    const name = checkName(m[1] as string);
    if (!isValidDigest(m[2] as string)) throw new RegistryError('DIGEST_INVALID', { message: 'invalid digest' });
    return { kind: 'blob', name, digest: m[2] as string };
  }
  m = TAGS.exec(path);
  if (m) return { kind: 'tags', name: checkName(m[1] as string) };
  throw new RegistryError('NAME_UNKNOWN', { message: 'no such registry endpoint' });
}
