import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { getGlobalDispatcher } from 'undici';
import { Pusher, sampleImage, type Image, freePort, startRegistry, type TestRegistry, createTestCa, type TestCa } from '@registry-proxy/testing';
import { startTestProxy, type TestProxy } from './proxy.js';

/** Client accounts of the proxy (passwords the tests type) and the proxy's own upstream account. */
export const USERS = { alice: 'alice-pw-7f3a', bob: 'bob-pw-91c2' } as const;
export const UPSTREAM_USER = { username: 'proxy-upstream', password: 'upstream-pw-c0ffee' } as const;

/** A real docker-registry with images, and the proxy in front of it. */
export interface World {
  readonly registry: TestRegistry;
  readonly proxy: TestProxy;
  readonly images: { v1: Image; v2: Image; amd64: Image; arm64: Image; secret: Image };
  readonly indexDigest: string;
  /** PEM of the proxy's signing key, so tests can mint tokens of their own. */
  readonly signingKeyPem: string;
  /** With `tls`: the CA that signed the proxy's certificate. */
  readonly ca?: TestCa;
  /** Every secret the proxy must never log. */
  readonly secrets: string[];
  stop(): Promise<void>;
}

/** `tls`: the proxy serves HTTPS with a certificate from a fresh test CA. */
export async function startWorld(options: { tls?: boolean } = {}): Promise<World> {
  const ca = options.tls ? createTestCa() : undefined;
  const server = ca?.issue('proxy');
  const registry = await startRegistry({ [UPSTREAM_USER.username]: UPSTREAM_USER.password });
  const push = new Pusher(registry.url, UPSTREAM_USER.username, UPSTREAM_USER.password);
  const images = { v1: sampleImage('amd64'), v2: sampleImage('amd64'), amd64: sampleImage('amd64'), arm64: sampleImage('arm64'), secret: sampleImage('amd64') };
  await push.image('team/app', 'v1', images.v1);
  await push.image('team/app', 'v2', images.v2);
  await push.image('team/app', 'v3', images.v2);
  const { digest: indexDigest } = await push.index('team/multi', 'latest', [images.amd64, images.arm64]);
  await push.image('secret/app', 'v1', images.secret);

  const dir = mkdtempSync(join(tmpdir(), 'rp-world-'));
  const signingKeyPem = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
  writeFileSync(join(dir, 'signing.pem'), signingKeyPem);
  writeFileSync(join(dir, 'users.htpasswd'), `bob:${bcrypt.hashSync(USERS.bob, 5)}\n`);
  process.env['RP_TEST_UPSTREAM_PASSWORD'] = UPSTREAM_USER.password;

  // An upstream that accepts connections and never answers, and a port where nothing listens.
  const held = new Set<Socket>();
  const silent: Server = createServer((sock) => {
    held.add(sock);
    sock.on('close', () => held.delete(sock));
  });
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  const silentPort = (silent.address() as { port: number }).port;
  const deadPort = await freePort();

  const proxy = await startTestProxy({
    ...(server ? { listen: { host: '127.0.0.1', port: 0, tls: { certFile: server.certFile, keyFile: server.keyFile } } } : {}),
    tokens: { signingKey: { file: join(dir, 'signing.pem') } },
    auth: [
      {
        type: 'static',
        htpasswd: join(dir, 'users.htpasswd'),
        users: [{ username: 'alice', passwordHash: bcrypt.hashSync(USERS.alice, 5), groups: ['dev'] }],
      },
    ],
    rules: [
      { account: 'alice', repository: ['push/**', 'mirror/push/**'], actions: ['pull', 'push', 'delete'] },
      { account: 'bob', repository: ['push/bob/**'], actions: ['pull', 'push'] },
      { groups: 'dev', repository: ['team/**', 'mirror/**', 'dead/**', 'slow/**'], actions: ['pull'] },
      { account: 'bob', repository: 'team/app', actions: ['pull'] },
      // Names as the virtual host gcr.localtest and the mirror clients use them.
      { groups: 'dev', repository: ['app', 'multi'], actions: ['pull'] },
    ],
    upstreams: [
      { name: 'local', url: registry.url, credentials: { type: 'static', username: UPSTREAM_USER.username, password: { env: 'RP_TEST_UPSTREAM_PASSWORD' } } },
      {
        name: 'mirror',
        prefix: 'mirror',
        namespace: 'team',
        mirrorOf: ['quay.localtest'],
        url: registry.url,
        credentials: { type: 'static', username: UPSTREAM_USER.username, password: UPSTREAM_USER.password },
      },
      // A virtual host: gcr.localtest/app is team/app upstream.
      { name: 'vhost', hosts: ['gcr.localtest'], namespace: 'team', url: registry.url, credentials: { type: 'static', username: UPSTREAM_USER.username, password: UPSTREAM_USER.password } },
      { name: 'dead', prefix: 'dead', url: `http://127.0.0.1:${deadPort}`, attempts: 2 },
      { name: 'slow', prefix: 'slow', url: `http://127.0.0.1:${silentPort}`, attempts: 1, timeouts: { headersMs: 300 } },
    ],
  });
  return {
    registry,
    proxy,
    images,
    indexDigest,
    signingKeyPem,
    ...(ca ? { ca } : {}),
    secrets: [USERS.alice, USERS.bob, UPSTREAM_USER.password],
    async stop() {
      await proxy.close();
      for (const s of held) s.destroy();
      silent.close();
      await registry.stop();
      // fetch's keep-alive connections would hold the test process open for seconds.
      await getGlobalDispatcher().close();
    },
  };
}

/** Asks the proxy's token endpoint for a token (GET with Basic credentials). */
export async function token(w: World, user: keyof typeof USERS | null, ...scopes: string[]): Promise<string> {
  const q = new URLSearchParams({ service: 'registry-proxy' });
  for (const s of scopes) q.append('scope', s);
  const headers: Record<string, string> = user ? { authorization: `Basic ${Buffer.from(`${user}:${USERS[user]}`).toString('base64')}` } : {};
  const res = await fetch(`${w.proxy.url}/token?${q}`, { headers });
  const body = (await res.json()) as { token?: string };
  if (res.status !== 200 || !body.token) throw new Error(`token: ${res.status}`);
  return body.token;
}
