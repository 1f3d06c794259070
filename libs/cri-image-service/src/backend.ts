import type { AuthConfig, Image, ImageFsInfoResponse, ImageSpec, PodSandboxConfig } from './gen/runtime/v1/api.js';

/** Why a backend call failed, mapped to a gRPC status by the server. */
export type BackendErrorKind = 'not_found' | 'unauthenticated' | 'denied' | 'invalid' | 'unavailable' | 'internal';

export class BackendError extends Error {
  constructor(
    readonly kind: BackendErrorKind,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'BackendError';
  }
}

/**
 * Tokens that echo what was pulled rather than why it failed: image references, registry
 * `host:port`s and URLs (anything with a "/" or a ":" followed by a digit).
 */
const ECHOES = /[^\s"'(),[\]]*\/[^\s"'(),[\]]*|[^\s"'(),[\]]+:\d[^\s"'(),[\]]*/g;
/** Docker Engine folds DENIED, MANIFEST_UNKNOWN and NAME_UNKNOWN into this one sentence. */
const DOCKER_LOGIN_HINT = /pull access denied for .*?, repository does not exist or may require 'docker login': /;

/**
 * Classifies a registry failure message the way runtimes word them. Issue 13 defect 10: the
 * message echoes the image reference, so a registry on port 40312 (or a repository named
 * `forbidden-app`) made a missing tag "denied". The echoes are removed first, numbers must stand
 * alone, and for Docker's "pull access denied ... may require 'docker login': CAUSE" only the
 * registry's own CAUSE counts.
 */
export function classifyPullFailure(message: string): BackendErrorKind {
  const hint = DOCKER_LOGIN_HINT.exec(message);
  const text = (hint ? message.slice(hint.index + hint[0].length) : message).replace(ECHOES, ' ');
  if (/unauthorized|authentication required|\b401\b|no basic auth credentials|invalid username\/password/i.test(text)) return 'unauthenticated';
  if (/denied|forbidden|\b403\b|insufficient_scope/i.test(text)) return 'denied';
  if (/not found|manifest unknown|\b404\b|name unknown/i.test(text)) return 'not_found';
  if (/connection refused|timeout|timed out|no such host|\bEOF\b|\b50[234]\b/i.test(text)) return 'unavailable';
  return 'internal';
}

/**
 * Where images live on the node. Calls take kubelet's whole ImageSpec (`image` is never empty):
 * its annotations and `runtime_handler` (RuntimeClassInImageCriApi) choose the runtime
 * configuration, so a backend that forwards must forward them as they came.
 */
export interface ImageBackend {
  readonly name: string;
  listImages(filter: ImageSpec | undefined): Promise<Image[]>;
  /** undefined when the image is not present (kubelet expects `image: null`, not an error). */
  imageStatus(spec: ImageSpec): Promise<Image | undefined>;
  /** Pulls, and answers with the image's id, the same value `Image.id` carries. */
  pullImage(spec: ImageSpec, auth: AuthConfig | undefined, sandbox: PodSandboxConfig | undefined): Promise<string>;
  /** Idempotent: removing a missing image is not an error. */
  removeImage(spec: ImageSpec): Promise<void>;
  imageFsInfo(): Promise<ImageFsInfoResponse>;
  close(): Promise<void>;
}
