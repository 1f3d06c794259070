import Docker from 'dockerode';
import { formatReference, parseReference } from '@registry-proxy/registry-core';
import { BackendError, classifyPullFailure, type ImageBackend } from './backend.js';
import type { AuthConfig, Image, ImageFsInfoResponse, ImageSpec } from './gen/runtime/v1/api.js';

/** A reference as Docker wants it: a tag or a digest always (a bare name would pull every tag). */
function normalise(image: string): string {
  if (/^sha256:[a-f0-9]{64}$/.test(image)) return image; // an image id
  try {
    return formatReference(parseReference(image));
  } catch (err) {
    throw new BackendError('invalid', (err as Error).message);
  }
}

function statusCode(err: unknown): number | undefined {
  return (err as { statusCode?: number }).statusCode;
}

function toImage(id: string, tags: readonly string[] | null | undefined, digests: readonly string[] | null | undefined, size: number, user: string | undefined): Image {
  const image: Image = {
    id,
    repoTags: (tags ?? []).filter((t) => t !== '<none>:<none>'),
    repoDigests: (digests ?? []).filter((d) => !d.startsWith('<none>@')),
    size: BigInt(Math.max(0, Math.trunc(size))),
    username: '',
    pinned: false,
  };
  // Config.User: "uid", "uid:gid", "name" or "name:group"; a number becomes uid, a name username.
  const u = (user ?? '').split(':')[0] ?? '';
  if (/^\d+$/.test(u)) image.uid = { value: BigInt(u) };
  else if (u !== '') image.username = u;
  return image;
}

/**
 * Images in Docker Engine (dockerode), for nodes whose runtime is Docker Engine through
 * cri-dockerd: what this backend pulls is where that runtime looks for it.
 */
export class DockerBackend implements ImageBackend {
  readonly name = 'docker';
  private readonly docker: Docker;

  constructor(opts: { socketPath: string }) {
    this.docker = new Docker({ socketPath: opts.socketPath });
  }

  // Docker Engine has one runtime configuration: ImageSpec annotations and runtime_handler have
  // nothing to select here, so only the reference is used.
  async listImages(filter: ImageSpec | undefined): Promise<Image[]> {
    const list = await this.call(() => this.docker.listImages({ digests: true, ...(filter ? { filters: { reference: [filter.image] } } : {}) }));
    const out: Image[] = [];
    for (const i of list) out.push(toImage(i.Id, i.RepoTags, i.RepoDigests, i.Size, undefined));
    return out;
  }

  async imageStatus(spec: ImageSpec | string): Promise<Image | undefined> {
    const image = typeof spec === 'string' ? spec : spec.image;
    try {
      const i = await this.docker.getImage(normalise(image)).inspect();
      return toImage(i.Id, i.RepoTags, i.RepoDigests, i.Size, i.Config?.User);
    } catch (err) {
      if (statusCode(err) === 404) return undefined;
      if (err instanceof BackendError) throw err;
      throw this.unavailable(err);
    }
  }

  async pullImage(spec: ImageSpec, auth: AuthConfig | undefined): Promise<string> {
    const ref = normalise(spec.image);
    const authconfig = auth ? dockerAuth(auth, parseReference(ref).registry) : undefined;
    let stream: NodeJS.ReadableStream;
    try {
      stream = await this.docker.pull(ref, authconfig ? { authconfig } : {});
    } catch (err) {
      // The Engine API answers a refused login as HTTP 500 with "unauthorized: ..." in the message.
      const message = errorMessage(err);
      throw new BackendError(classifyPullFailure(message), `pulling ${ref}: ${message}`, { cause: err });
    }
    await new Promise<void>((resolve, reject) => {
      this.docker.modem.followProgress(stream, (err: Error | null, events: Array<{ error?: string; errorDetail?: { message?: string } }>) => {
        const failed = err?.message ?? events.find((e) => e.error)?.error;
        if (failed) reject(new BackendError(classifyPullFailure(failed), `pulling ${ref}: ${failed}`));
        else resolve();
      });
    });
    const pulled = await this.imageStatus(ref);
    if (!pulled) throw new BackendError('internal', `pulled ${ref}, but Docker does not list it`);
    return pulled.id;
  }

  async removeImage(spec: ImageSpec): Promise<void> {
    const image = spec.image;
    try {
      await this.docker.getImage(normalise(image)).remove({ force: false });
    } catch (err) {
      if (statusCode(err) === 404) return;
      if (err instanceof BackendError) throw err;
      throw new BackendError(statusCode(err) === 409 ? 'invalid' : 'unavailable', `removing ${image}: ${errorMessage(err)}`, { cause: err });
    }
  }

  async imageFsInfo(): Promise<ImageFsInfoResponse> {
    const [info, df] = await this.call(() => Promise.all([this.docker.info() as Promise<{ DockerRootDir?: string }>, this.docker.df() as Promise<{ LayersSize?: number }>]));
    return {
      imageFilesystems: [
        { timestamp: BigInt(Date.now()) * 1_000_000n, fsId: { mountpoint: info.DockerRootDir ?? '/var/lib/docker' }, usedBytes: { value: BigInt(df.LayersSize ?? 0) }, inodesUsed: { value: 0n } },
      ],
      containerFilesystems: [],
    };
  }

  async close(): Promise<void> {
    /* dockerode keeps no connection open between calls */
  }

  private async call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw this.unavailable(err);
    }
  }

  private unavailable(err: unknown): BackendError {
    return new BackendError('unavailable', `Docker Engine: ${errorMessage(err)}`, { cause: err });
  }
}

function errorMessage(err: unknown): string {
  const e = err as { json?: { message?: string }; reason?: string; message?: string; code?: string };
  return e.json?.message ?? e.message ?? e.code ?? String(err);
}

/** CRI AuthConfig to the Engine API's X-Registry-Auth. */
function dockerAuth(a: AuthConfig, registry: string): Docker.AuthConfig {
  let { username, password } = a;
  if ((!username || !password) && a.auth) {
    const decoded = Buffer.from(a.auth, 'base64').toString('utf8');
    const i = decoded.indexOf(':');
    if (i > 0) {
      username = decoded.slice(0, i);
      password = decoded.slice(i + 1);
    }
  }
  const serveraddress = a.serverAddress || (registry === 'docker.io' ? 'https://index.docker.io/v1/' : registry);
  const out: Docker.AuthConfig & { identitytoken?: string; registrytoken?: string } = { username: username ?? '', password: password ?? '', serveraddress };
  if (a.identityToken) out.identitytoken = a.identityToken;
  if (a.registryToken) out.registrytoken = a.registryToken;
  return out;
}
