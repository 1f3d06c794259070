import { createHash, X509Certificate } from 'node:crypto';
import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { createSecureContext } from 'node:tls';
import { ProxyError, RegistryError } from '@registry-proxy/registry-core';
import type { Logger } from 'pino';
import { createApp } from './app.js';
import type { Config } from './config/schema.js';
import { Metrics } from './metrics.js';
import { deferContinue } from './expect.js';
import { answerClientError, sendError } from './respond.js';
import { createRuntime } from './runtime.js';

/** A running proxy. */
export interface RunningProxy {
  readonly server: Server;
  readonly url: string;
  readonly metrics: Metrics;
  close(): Promise<void>;
}

type TlsFiles = NonNullable<Config['listen']['tls']>;

/** Reads a certificate and key pair and checks that they belong together; never logs the key. */
function readTls(tls: TlsFiles): { cert: Buffer; key: Buffer; summary: Record<string, string> } {
  let cert: Buffer;
  let key: Buffer;
  try {
    cert = readFileSync(tls.certFile);
    key = readFileSync(tls.keyFile);
  } catch (cause) {
    throw new ProxyError('RP_ERR_CONFIG_READ', `listen.tls: cannot read ${(cause as NodeJS.ErrnoException).path ?? 'a file'}: ${(cause as NodeJS.ErrnoException).code ?? cause}`, { cause });
  }
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
    createSecureContext({ cert, key }); // throws when the key does not match the certificate
  } catch (cause) {
    throw new ProxyError('RP_ERR_CONFIG_INVALID', `listen.tls: unusable certificate or key: ${(cause as Error).message}`, { cause });
  }
  return { cert, key, summary: { subject: x509.subject.replace(/\n/g, ', '), notAfter: x509.validTo, sha256: createHash('sha256').update(x509.raw).digest('hex') } };
}

/** Builds the runtime and starts listening (port 0 picks a free port); HTTPS when `listen.tls` is set. */
export async function startProxy(config: Config, logger: Logger, options: { defaultMetrics?: boolean } = {}): Promise<RunningProxy> {
  const tls = config.listen.tls;
  const initial = tls ? readTls(tls) : undefined;
  const runtime = await createRuntime(config, logger);
  const metrics = new Metrics(options.defaultMetrics ?? true);
  // requireHostHeader off: the app answers a missing Host itself, in the registry error format (./host.ts).
  const serverOptions = { keepAliveTimeout: 65_000, headersTimeout: 30_000, requestTimeout: 0, requireHostHeader: false };
  const app = createApp(runtime, metrics, logger);
  const server: Server = initial ? createHttpsServer({ ...serverOptions, cert: initial.cert, key: initial.key }, app) : createServer(serverOptions, app);
  server.on('clientError', answerClientError);
  server.on('checkContinue', deferContinue(app));
  // Any other Expect: Node's own answer is a bare 417; this one is in the registry format.
  server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => sendError(req, res, new RegistryError('EXPECTATION_FAILED'), req.method === 'HEAD'));
  let stopWatching = () => undefined as void;
  if (tls && initial) {
    logger.info({ certificate: initial.summary }, 'serving HTTPS');
    // Polling stat follows symlinks, so it sees Kubernetes' atomic secret updates and
    // cert-manager renewals as well as files rewritten in place.
    const reload = () => {
      try {
        const next = readTls(tls);
        (server as HttpsServer).setSecureContext({ cert: next.cert, key: next.key });
        logger.info({ certificate: next.summary }, 'TLS certificate reloaded');
      } catch (err) {
        // Half-written pairs land here too; the next change retries. The old pair stays in use.
        logger.warn({ err: { message: (err as Error).message } }, 'TLS certificate not reloaded; keeping the current one');
      }
    };
    const interval = tls.reloadIntervalMs;
    watchFile(tls.certFile, { interval, persistent: false }, reload);
    watchFile(tls.keyFile, { interval, persistent: false }, reload);
    stopWatching = () => {
      unwatchFile(tls.certFile, reload);
      unwatchFile(tls.keyFile, reload);
    };
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.listen.port, config.listen.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  const url = `${tls ? 'https' : 'http'}://${host}:${addr.port}`;
  logger.info({ url, upstreams: config.upstreams.map((u) => ({ name: u.name, prefix: u.prefix, url: u.url })) }, 'registry-proxy listening');
  let closing: Promise<void> | undefined;
  return {
    server,
    url,
    metrics,
    close() {
      closing ??= (async () => {
        stopWatching();
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeIdleConnections();
          // Requests still streaming get a grace period, then their connections are cut.
          setTimeout(() => server.closeAllConnections(), 10_000).unref();
        });
        await runtime.close();
      })();
      return closing;
    },
  };
}
