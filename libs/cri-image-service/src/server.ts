import { chmod, rm } from 'node:fs/promises';
import { createServer, type Server as NetServer, type Socket } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { BackendError, type BackendErrorKind, type ImageBackend } from './backend.js';
import { AuthorityFixingConnection } from './h2/authority.js';
import { ImageServiceService, RuntimeServiceService, type AuthConfig, type ImageServiceServer, type ImageSpec, type RuntimeServiceServer } from './gen/runtime/v1/api.js';

/** What the credential hook decided for one pull; `decision` is for the log (never a secret). */
export interface CredentialDecision {
  readonly auth: AuthConfig | undefined;
  readonly decision: string;
}

/** One RPC, for the log line: never credentials. */
export interface RpcLog {
  readonly rpc: string;
  readonly image?: string;
  readonly credentials?: string;
  readonly ms: number;
  readonly code: grpc.status;
  readonly error?: string;
}

export interface ImageServiceOptions {
  readonly backend: ImageBackend;
  /** Picks the credentials for a pull; given the image and what kubelet sent. */
  readonly credentials?: (image: string, fromKubelet: AuthConfig | undefined) => Promise<CredentialDecision>;
  readonly onRpc?: (log: RpcLog) => void;
  /** Told once per connection whose client sent an authority node:http2 refuses (see h2/authority.ts). */
  readonly onAuthorityRewrite?: (authority: string) => void;
  /** A client connection failed below gRPC (hung up, or sent frames the rewriter refused). */
  readonly onConnectionError?: (err: Error) => void;
  readonly version?: { readonly runtimeName: string; readonly runtimeVersion: string };
}

const STATUS: Record<BackendErrorKind, grpc.status> = {
  not_found: grpc.status.NOT_FOUND,
  unauthenticated: grpc.status.UNAUTHENTICATED,
  denied: grpc.status.PERMISSION_DENIED,
  invalid: grpc.status.INVALID_ARGUMENT,
  unavailable: grpc.status.UNAVAILABLE,
  internal: grpc.status.UNKNOWN,
};

function hasAuth(a: AuthConfig | undefined): a is AuthConfig {
  return !!a && !!(a.username || a.password || a.auth || a.identityToken || a.registryToken);
}

/**
 * The CRI `runtime.v1.ImageService` (and `RuntimeService.Version`) over an {@link ImageBackend},
 * on a unix socket. Errors are gRPC statuses: NOT_FOUND for a missing image, UNAUTHENTICATED or
 * PERMISSION_DENIED when the registry refused, so kubelet's events tell them apart.
 */
export class CriImageServer {
  readonly server = new grpc.Server();
  private socket: string | undefined;
  private listener: NetServer | undefined;
  private readonly connections = new Set<Socket>();

  constructor(private readonly opts: ImageServiceOptions) {
    const run = <Req, Res>(rpc: string, image: (r: Req) => string | undefined, fn: (r: Req, note: { credentials?: string }) => Promise<Res>): grpc.handleUnaryCall<Req, Res> => {
      return (call, callback) => {
        const started = process.hrtime.bigint();
        const note: { credentials?: string } = {};
        const img = image(call.request);
        fn(call.request, note).then(
          (res) => {
            this.log({ rpc, ...(img ? { image: img } : {}), ...note, ms: Number(process.hrtime.bigint() - started) / 1e6, code: grpc.status.OK });
            callback(null, res);
          },
          (err: unknown) => {
            const code = err instanceof BackendError ? STATUS[err.kind] : grpc.status.UNKNOWN;
            const message = err instanceof Error ? err.message : String(err);
            this.log({ rpc, ...(img ? { image: img } : {}), ...note, ms: Number(process.hrtime.bigint() - started) / 1e6, code, error: message });
            callback({ code, details: message, metadata: new grpc.Metadata() });
          },
        );
      };
    };
    const requireImage = (i: ImageSpec | undefined): ImageSpec => {
      if (!i?.image) throw new BackendError('invalid', 'image is required');
      return i;
    };
    const backend = opts.backend;
    const images: ImageServiceServer = {
      listImages: run(
        'ListImages',
        (r) => r.filter?.image?.image || undefined,
        async (r) => ({ images: await backend.listImages(r.filter?.image?.image ? r.filter.image : undefined) }),
      ),
      imageStatus: run(
        'ImageStatus',
        (r) => r.image?.image,
        async (r) => {
          const image = await backend.imageStatus(requireImage(r.image));
          return image ? { image, info: {} } : { info: {} };
        },
      ),
      pullImage: run(
        'PullImage',
        (r) => r.image?.image,
        async (r, note) => {
          const spec = requireImage(r.image);
          let auth = hasAuth(r.auth) ? r.auth : undefined;
          if (opts.credentials) {
            const d = await opts.credentials(spec.image, auth);
            auth = d.auth;
            note.credentials = d.decision;
          } else note.credentials = auth ? 'from kubelet' : 'none';
          return { imageRef: await backend.pullImage(spec, auth, r.sandboxConfig) };
        },
      ),
      removeImage: run(
        'RemoveImage',
        (r) => r.image?.image,
        async (r) => {
          await backend.removeImage(requireImage(r.image));
          return {};
        },
      ),
      imageFsInfo: run(
        'ImageFsInfo',
        () => undefined,
        () => backend.imageFsInfo(),
      ),
    };
    const runtime: RuntimeServiceServer = {
      version: run(
        'Version',
        () => undefined,
        async () => ({
          version: '0.1.0',
          runtimeName: opts.version?.runtimeName ?? 'registry-proxy-image-service',
          runtimeVersion: opts.version?.runtimeVersion ?? '0.1.0',
          runtimeApiVersion: 'v1',
        }),
      ),
    };
    this.server.addService(ImageServiceService, images);
    this.server.addService(RuntimeServiceService, runtime);
  }

  private log(l: RpcLog): void {
    this.opts.onRpc?.(l);
  }

  /** Listens on a unix socket, replacing a stale one, with the given mode (0600 by default). */
  async listen(socketPath: string, mode = 0o600): Promise<void> {
    await rm(socketPath, { force: true });
    // Our own listener hands each connection to grpc-js through the authority rewriter, so
    // Go clients that send the socket path as :authority (older kubelets) are served.
    const injector = this.server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
    const listener = createServer((socket) => {
      this.connections.add(socket);
      socket.once('close', () => this.connections.delete(socket));
      injector.injectConnection(new AuthorityFixingConnection(socket, this.opts.onAuthorityRewrite, this.opts.onConnectionError));
    });
    await new Promise<void>((resolve, reject) => {
      listener.once('error', reject);
      listener.listen(socketPath, () => {
        listener.off('error', reject);
        resolve();
      });
    });
    this.listener = listener;
    await chmod(socketPath, mode);
    this.socket = socketPath;
  }

  /** Stops taking calls, lets running ones finish (up to `graceMs`), then removes the socket. */
  async close(graceMs = 10_000): Promise<void> {
    // Stop accepting first; tryShutdown then lets the injected connections finish.
    const listener = this.listener;
    const closed = listener ? new Promise<void>((resolve) => listener.close(() => resolve())) : Promise.resolve();
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, graceMs);
      this.server.tryShutdown(() => {
        clearTimeout(force);
        resolve();
      });
    });
    // A client that keeps its socket open after GOAWAY would hold the listener's close forever.
    for (const socket of this.connections) socket.destroy();
    await closed;
    if (this.socket) await rm(this.socket, { force: true });
    await this.opts.backend.close();
  }
}
