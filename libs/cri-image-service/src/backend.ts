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

/** Classifies a registry failure message the way runtimes word them. */
export function classifyPullFailure(message: string): BackendErrorKind {
  if (/unauthorized|authentication required|401|no basic auth credentials|invalid username\/password/i.test(message)) return 'unauthenticated';
  if (/denied|forbidden|403|insufficient_scope/i.test(message)) return 'denied';
  if (/not found|manifest unknown|404|name unknown/i.test(message)) return 'not_found';
  if (/connection refused|timeout|timed out|no such host|EOF|502|503|504/i.test(message)) return 'unavailable';
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
