import { randomBytes } from 'node:crypto';
import { lstat, rename, unlink } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CriBackend, CriImageServer, DockerBackend, type ImageBackend } from '@registry-proxy/cri-image-service';
import type { Logger } from 'pino';
import { Counter, Histogram, Registry } from 'prom-client';
import { checkNode, type Config } from './config.js';
import { CredentialRules } from './credentials.js';

/** A running image service: the gRPC socket, and health and metrics over HTTP on a local address. */
export interface RunningImageService {
  readonly socket: string;
  readonly healthUrl: string;
  close(): Promise<void>;
}

export function backendFor(config: Config): ImageBackend {
  return config.backend.type === 'docker' ? new DockerBackend({ socketPath: config.backend.socket }) : new CriBackend({ socketPath: config.backend.socket });
}

export async function startImageService(config: Config, logger: Logger): Promise<RunningImageService> {
  checkNode(config);
  const rules = new CredentialRules(config);
  const registry = new Registry();
  const rpcs = new Counter({ name: 'kubelet_image_service_rpcs_total', help: 'CRI RPCs by method and gRPC status code', labelNames: ['rpc', 'code'] as const, registers: [registry] });
  const seconds = new Histogram({
    name: 'kubelet_image_service_rpc_seconds',
    help: 'CRI RPC duration',
    labelNames: ['rpc'] as const,
    buckets: [0.005, 0.05, 0.25, 1, 5, 30, 120, 600],
    registers: [registry],
  });
  const backend = backendFor(config);
  const server = new CriImageServer({
    backend,
    credentials: (image, fromKubelet) => rules.decide(image, fromKubelet),
    onRpc: (l) => {
      rpcs.inc({ rpc: l.rpc, code: String(l.code) });
      seconds.observe({ rpc: l.rpc }, l.ms / 1000);
      // One line per RPC: the image and the credential decision, never a secret.
      const line = { rpc: l.rpc, image: l.image, credentials: l.credentials, ms: Math.round(l.ms * 10) / 10, code: l.code, error: l.error };
      if (l.code === 0) logger.info(line, 'rpc');
      else logger.warn(line, 'rpc failed');
    },
    // Older kubelets send the socket path as :authority; the service serves them all the same.
    onAuthorityRewrite: (authority) => logger.debug({ authority }, 'rewrote the HTTP/2 :authority of a client connection to localhost'),
    onConnectionError: (err) => logger.debug({ err: err.message }, 'client connection failed'),
  });
  // Socket hand-over (a DaemonSet rolling update with maxSurge: 1): listen on a name of our own,
  // then rename it over the socket path. The rename is atomic: kubelet's next dial reaches this
  // process, while the pod being replaced finishes the calls it has. Our inode tells later
  // whether the path is still ours.
  const ownName = `${config.socket}.${process.pid}.${randomBytes(4).toString('hex')}`;
  await server.listen(ownName, config.socketMode);
  await rename(ownName, config.socket);
  const ownInode = (await lstat(config.socket)).ino;
  const health: Server = createServer((req, res) => {
    if (req.url === '/healthz') return void res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    if (req.url === '/metrics') {
      void registry.metrics().then((m) => res.writeHead(200, { 'content-type': registry.contentType }).end(m));
      return;
    }
    res.writeHead(404).end();
  });
  const listenHealth = () =>
    new Promise<void>((resolve, reject) => {
      health.once('error', reject);
      health.listen(config.health.port, config.health.host, () => {
        health.off('error', reject);
        resolve();
      });
    });
  let retry: NodeJS.Timeout | undefined;
  try {
    await listenHealth();
  } catch (err) {
    // With hostNetwork, the pod being replaced holds the health port until it goes; keep trying.
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || config.health.port === 0) throw err;
    logger.warn({ port: config.health.port }, 'health port in use (the pod being replaced?); retrying every second');
    const again = () => {
      retry = setTimeout(() => listenHealth().then(() => logger.info({ port: config.health.port }, 'health port bound'), again), 1000);
    };
    again();
  }
  const addr = health.address() as AddressInfo | null;
  const host = addr?.address ?? config.health.host;
  const healthUrl = `http://${host.includes(':') ? `[${host}]` : host}:${addr?.port ?? config.health.port}`;
  logger.info({ socket: config.socket, backend: config.backend.type, backendSocket: config.backend.socket, health: healthUrl, rules: config.credentials.length }, 'kubelet image service listening');
  return {
    socket: config.socket,
    healthUrl,
    async close() {
      // Unlink the socket only while it is ours: after a hand-over the path is the new pod's.
      try {
        if ((await lstat(config.socket)).ino === ownInode) await unlink(config.socket);
        else logger.info({ socket: config.socket }, 'socket taken over by another process; left in place');
      } catch {
        /* already gone */
      }
      clearTimeout(retry);
      if (health.listening) await new Promise<void>((r) => health.close(() => r()));
      await server.close();
    },
  };
}
