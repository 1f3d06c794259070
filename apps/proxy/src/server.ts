import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { createApp } from './app.js';
import type { Config } from './config/schema.js';
import { Metrics } from './metrics.js';
import { createRuntime } from './runtime.js';

/** A running proxy. */
export interface RunningProxy {
  readonly server: Server;
  readonly url: string;
  readonly metrics: Metrics;
  close(): Promise<void>;
}

/** Builds the runtime and starts listening (port 0 picks a free port). */
export async function startProxy(config: Config, logger: Logger, options: { defaultMetrics?: boolean } = {}): Promise<RunningProxy> {
  const runtime = await createRuntime(config, logger);
  const metrics = new Metrics(options.defaultMetrics ?? true);
  const server = createServer({ keepAliveTimeout: 65_000, headersTimeout: 30_000, requestTimeout: 0 }, createApp(runtime, metrics, logger));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.listen.port, config.listen.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  const url = `http://${host}:${addr.port}`;
  logger.info({ url, upstreams: config.upstreams.map((u) => ({ name: u.name, prefix: u.prefix, url: u.url })) }, 'registry-proxy listening');
  let closing: Promise<void> | undefined;
  return {
    server,
    url,
    metrics,
    close() {
      closing ??= (async () => {
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
