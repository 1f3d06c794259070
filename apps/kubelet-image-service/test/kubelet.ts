import * as grpc from '@grpc/grpc-js';
import { ImageServiceClient, type AuthConfig, type Image, type ImageFsInfoResponse } from '@registry-proxy/cri-image-service';

const spec = (image: string) => ({ image, annotations: {}, userSpecifiedImage: '', runtimeHandler: '' });

/**
 * Plays kubelet's side of the CRI image service over the unix socket, with the calls kubelet
 * makes: ImageFsInfo when it starts, then ImageStatus before PullImage, ListImages for garbage
 * collection, RemoveImage.
 */
export class KubeletImageClient {
  private readonly client: ImageServiceClient;

  constructor(socket: string) {
    this.client = new ImageServiceClient(`unix://${socket}`, grpc.credentials.createInsecure());
  }

  private call<Res>(fn: (cb: (e: grpc.ServiceError | null, r: Res) => void) => unknown): Promise<Res> {
    return new Promise((resolve, reject) => fn((e, r) => (e ? reject(e) : resolve(r))));
  }

  imageFsInfo(): Promise<ImageFsInfoResponse> {
    return this.call((cb) => this.client.imageFsInfo({}, cb));
  }
  async imageStatus(image: string): Promise<Image | undefined> {
    return (await this.call<{ image?: Image | undefined }>((cb) => this.client.imageStatus({ image: spec(image), verbose: false }, cb))).image;
  }
  async pullImage(image: string, auth?: Partial<AuthConfig>): Promise<string> {
    const a = auth ? { username: '', password: '', auth: '', serverAddress: '', identityToken: '', registryToken: '', ...auth } : undefined;
    return (await this.call<{ imageRef: string }>((cb) => this.client.pullImage({ image: spec(image), ...(a ? { auth: a } : {}) }, cb))).imageRef;
  }
  async listImages(filter?: string): Promise<Image[]> {
    return (await this.call<{ images: Image[] }>((cb) => this.client.listImages(filter ? { filter: { image: spec(filter) } } : {}, cb))).images;
  }
  async removeImage(image: string): Promise<void> {
    await this.call((cb) => this.client.removeImage({ image: spec(image) }, cb));
  }
  close(): void {
    this.client.close();
  }
}
