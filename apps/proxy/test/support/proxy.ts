import { Writable } from 'node:stream';
import { stringify } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/logging.js';
import { startProxy, type RunningProxy } from '../../src/server.js';

/** The proxy started in this process on a free port, with every log line kept for inspection. */
export interface TestProxy extends RunningProxy {
  readonly host: string;
  readonly logs: string[];
  /** How many requests the proxy has sent upstream so far (from its own metrics). */
  upstreamRequests(): Promise<number>;
}

export async function startTestProxy(config: Record<string, unknown>): Promise<TestProxy> {
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      logs.push(chunk.toString());
      cb();
    },
  });
  const parsed = parseConfig(stringify({ listen: { host: '127.0.0.1', port: 0 }, log: { level: 'debug' }, ...config }), 'test config');
  const proxy = await startProxy(parsed, createLogger('debug', sink), { defaultMetrics: false });
  return {
    ...proxy,
    host: new URL(proxy.url).host,
    logs,
    async upstreamRequests() {
      const m = await proxy.metrics.upstreamLatency.get();
      return m.values.filter((v) => v.metricName?.endsWith('_count')).reduce((a, v) => a + v.value, 0);
    },
  };
}
