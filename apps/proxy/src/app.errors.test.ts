/**
 * Defect 1 of issue 11, the class: a failure in any async route handler reaches the error
 * middleware and becomes a registry error; none is dropped as an unhandled rejection.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { stringify } from 'yaml';
import { createApp } from './app.js';
import { parseConfig } from './config/load.js';
import { createLogger } from './logging.js';
import { Metrics } from './metrics.js';
import { createRuntime, type Runtime } from './runtime.js';

let server: Server;
let url: string;
let runtime: Runtime;
const logs: string[] = [];
const rejections: unknown[] = [];
const onRejection = (r: unknown) => rejections.push(r);

beforeAll(async () => {
  process.on('unhandledRejection', onRejection);
  const config = parseConfig(stringify({ listen: { port: 0 }, upstreams: [{ name: 'up', url: 'http://127.0.0.1:1' }] }), 'test');
  const logger = createLogger('debug', new Writable({ write: (c: Buffer, _e, cb) => (logs.push(c.toString()), cb()) }));
  runtime = await createRuntime(config, logger);
  const metrics = new Metrics(false);
  const boom = () => Promise.reject(new Error('boom'));
  // Every async dependency of a route fails.
  Object.assign(runtime.tokenEndpoint, { handle: boom });
  Object.assign(runtime.tokens, { verifyAccessToken: boom });
  Object.assign(metrics.registry, { metrics: boom });
  server = createServer(createApp(runtime, metrics, logger));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  process.off('unhandledRejection', onRejection);
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  await runtime.close();
});

describe('a failing async handler', () => {
  it.each([
    ['GET', '/token?service=registry-proxy', {}],
    ['POST', '/token', { 'content-type': 'application/x-www-form-urlencoded' }],
    ['GET', '/v2/', { authorization: 'Bearer abc' }],
    ['GET', '/v2/team/app/manifests/v1', { authorization: 'Bearer abc' }],
    ['GET', '/v2/_catalog', { authorization: 'Bearer abc' }],
    ['GET', '/metrics', {}],
  ])('%s %s: 500 UNKNOWN in the registry format, and the rejection is not dropped', async (method, path, headers) => {
    const res = await fetch(`${url}${path}`, { method, headers, ...(method === 'POST' ? { body: 'grant_type=password&username=u&password=p' } : {}) });
    expect(res.status).toBe(500);
    expect(await res.json()).toEqual({ errors: [{ code: 'UNKNOWN', message: 'unknown error' }] });
    await new Promise((r) => setTimeout(r, 20));
    expect(rejections).toEqual([]);
  });
});
