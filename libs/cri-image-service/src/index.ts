export { AuthConfig, Image, ImageFsInfoResponse, ImageServiceClient, ImageSpec, PodSandboxConfig } from './gen/runtime/v1/api.js';
export { BackendError, type BackendErrorKind, type ImageBackend } from './backend.js';
export { type CredentialDecision, CriImageServer, type ImageServiceOptions, type RpcLog } from './server.js';
export { DockerBackend } from './docker-backend.js';
export { CriBackend } from './cri-backend.js';
