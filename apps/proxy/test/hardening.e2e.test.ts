/**
 * Request-handling defects of issue 11, each pinned against a real docker-registry behind the
 * proxy, with raw sockets where the framing itself is the point (fetch would fix it up).
 */
import bcrypt from 'bcryptjs';
import { KeySet, TokenService } from '@registry-proxy/registry-core';
import { requireCommands } from '@registry-proxy/testing';
import { UPSTREAM_USER, USERS, startWorld, token, type World } from './support/fixture.js';
import { startTestProxy, type TestProxy } from './support/proxy.js';
import { bodyOf, raw, write } from './support/raw.js';

jest.setTimeout(60_000);
let w: World;
let port: number;
const rejections: unknown[] = [];
const onRejection = (r: unknown) => rejections.push(r);

beforeAll(async () => {
  await requireCommands('docker-registry', 'htpasswd');
  process.on('unhandledRejection', onRejection);
  w = await startWorld();
  port = Number(new URL(w.proxy.url).port);
});
afterAll(async () => {
  process.off('unhandledRejection', onRejection);
  await w?.stop();
});

const errorCodes = (text: string) => (bodyOf(text) as { errors: Array<{ code: string }> }).errors.map((e) => e.code);

/** The proxy still answers: /v2/ without a token is its 401 challenge. */
async function stillServing(): Promise<void> {
  const res = await fetch(`${w.proxy.url}/v2/`);
  expect(res.status).toBe(401);
}

describe('defect 1: an oversized manifest body', () => {
  it('chunked 5,000,000 zero bytes: 413 SIZE_INVALID, Connection: close, and the proxy lives on', async () => {
    const t = await token(w, 'alice', 'repository:push/big:pull,push');
    const reply = await raw(port, async (sock) => {
      await write(
        sock,
        `PUT /v2/push/big/manifests/v1 HTTP/1.1\r\nHost: ${w.proxy.host}\r\nAuthorization: Bearer ${t}\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nTransfer-Encoding: chunked\r\n\r\n`,
      );
      const chunk = Buffer.alloc(50_000);
      const frame = Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')]);
      for (let sent = 0; sent < 5_000_000; sent += chunk.length) await write(sock, frame);
      await write(sock, '0\r\n\r\n');
    });
    expect(reply.statuses).toEqual([413]);
    expect(reply.text).toMatch(/\r\nconnection: close\r\n/i);
    expect(errorCodes(reply.text)).toEqual(['SIZE_INVALID']);
    expect(reply.closed).toBe(true);
    await new Promise((r) => setTimeout(r, 100));
    expect(rejections).toEqual([]);
    await stillServing();
  });

  it('a declared Content-Length over 4 MiB: 413 before any byte of the body, and the connection closed', async () => {
    const t = await token(w, 'alice', 'repository:push/big:pull,push');
    const reply = await raw(
      port,
      (sock) => write(sock, `PUT /v2/push/big/manifests/v1 HTTP/1.1\r\nHost: ${w.proxy.host}\r\nAuthorization: Bearer ${t}\r\nContent-Length: 5000000\r\n\r\n{`),
      5000, // the proxy waits up to two seconds for the body it drops before it closes
    );
    expect(reply.statuses).toEqual([413]);
    expect(reply.text).toMatch(/\r\nconnection: close\r\n/i);
    expect(errorCodes(reply.text)).toEqual(['SIZE_INVALID']);
    expect(reply.closed).toBe(true);
    expect(rejections).toEqual([]);
    await stillServing();
  });

  it('a client that leaves in the middle of a manifest body does not take the proxy down', async () => {
    const t = await token(w, 'alice', 'repository:push/big:pull,push');
    await raw(
      port,
      async (sock) => {
        await write(sock, `PUT /v2/push/big/manifests/v1 HTTP/1.1\r\nHost: ${w.proxy.host}\r\nAuthorization: Bearer ${t}\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123456789`);
        sock.destroy();
      },
      200,
    );
    await new Promise((r) => setTimeout(r, 200));
    expect(rejections).toEqual([]);
    await stillServing();
  });
});

describe('defect 1: the error middleware keeps the 4xx it is given', () => {
  const form = (body: string, type = 'application/x-www-form-urlencoded') => fetch(`${w.proxy.url}/token`, { method: 'POST', headers: { 'content-type': type }, body });

  it('a form body over the limit is 413 SIZE_INVALID, not UNAUTHORIZED', async () => {
    const res = await form(`grant_type=password&x=${'a'.repeat(70_000)}`);
    expect(res.status).toBe(413);
    expect(((await res.json()) as { errors: Array<{ code: string }> }).errors[0]?.code).toBe('SIZE_INVALID');
  });

  it('a form in a charset the parser does not know is 415 UNSUPPORTED', async () => {
    const res = await form('grant_type=password', 'application/x-www-form-urlencoded; charset=x-no-such-charset');
    expect(res.status).toBe(415);
    expect(((await res.json()) as { errors: Array<{ code: string }> }).errors[0]?.code).toBe('UNSUPPORTED');
  });

  it('a form shorter than its Content-Length, then a half-close: a 400 in the registry format (Node alone sends a bare 400)', async () => {
    const reply = await raw(port, async (sock) => {
      await write(sock, `POST /token HTTP/1.1\r\nHost: ${w.proxy.host}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ngrant_type=password`);
      sock.end();
    });
    expect(reply.statuses).toEqual([400]);
    expect(errorCodes(reply.text)).toEqual(['UNSUPPORTED']);
    await stillServing();
  });

  it('a request Node cannot parse gets a registry error, not a bare 400', async () => {
    const reply = await raw(port, (sock) => write(sock, `GET /v2/ HTTP/1.1\r\nHost: ${w.proxy.host}\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n`));
    expect(reply.statuses).toEqual([400]);
    expect(errorCodes(reply.text)).toEqual(['UNSUPPORTED']);
    expect(reply.closed).toBe(true);
    await stillServing();
  });
});

describe('defect 2: host binding', () => {
  let hp: TestProxy;
  let hport: number;
  const basic = `Basic ${Buffer.from(`alice:${USERS.alice}`).toString('base64')}`;
  beforeAll(async () => {
    hp = await startTestProxy({
      tokens: { signingKey: w.signingKeyPem },
      auth: [{ type: 'static', users: [{ username: 'alice', passwordHash: bcrypt.hashSync(USERS.alice, 4) }] }],
      rules: [
        // Nothing at all on vb.test; team/** elsewhere.
        { hosts: ['vb.test'], account: '**', repository: '**', actions: [] },
        { account: 'alice', repository: 'team/**', actions: ['pull'] },
      ],
      upstreams: [{ name: 'local', url: w.registry.url, credentials: { type: 'static', username: UPSTREAM_USER.username, password: UPSTREAM_USER.password } }],
    });
    hport = Number(new URL(hp.url).port);
  });
  afterAll(() => hp?.close());

  const tokenRequest = (hostLines: string, version = '1.1') =>
    raw(hport, (sock) => write(sock, `GET /token?service=registry-proxy&scope=repository:team/app:pull HTTP/${version}\r\n${hostLines}Authorization: ${basic}\r\nConnection: close\r\n\r\n`));

  it.each([
    ['no Host (HTTP/1.0)', '', '1.0'],
    ['no Host (HTTP/1.1)', '', '1.1'],
    ['an empty Host', 'Host: \r\n', '1.1'],
    ['two Host headers', 'Host: localhost\r\nHost: vb.test\r\n', '1.1'],
    ['a Host that is not a host', 'Host: a/b@c\r\n', '1.1'],
  ])('/token with %s: 400 in the registry format, no token', async (_what, hostLines, version) => {
    const reply = await tokenRequest(hostLines, version);
    expect(reply.statuses).toEqual([400]);
    expect(errorCodes(reply.text)).toEqual(['UNSUPPORTED']);
    expect(reply.text).not.toContain('"token"');
  });

  it('/v2 with two Host headers or none: 400 in the registry format', async () => {
    const good = await raw(hport, (sock) =>
      write(sock, `GET /token?service=registry-proxy&scope=repository:team/app:pull HTTP/1.1\r\nHost: localhost\r\nAuthorization: ${basic}\r\nConnection: close\r\n\r\n`),
    );
    const t = (bodyOf(good.text) as { token: string }).token;
    for (const hostLines of ['Host: localhost\r\nHost: vb.test\r\n', '', 'Host: \r\n']) {
      const reply = await raw(hport, (sock) => write(sock, `GET /v2/team/app/tags/list HTTP/1.1\r\n${hostLines}Authorization: Bearer ${t}\r\nConnection: close\r\n\r\n`));
      expect(reply.statuses).toEqual([400]);
      expect(errorCodes(reply.text)).toEqual(['UNSUPPORTED']);
    }
    const ok = await raw(hport, (sock) => write(sock, `GET /v2/team/app/tags/list HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${t}\r\nConnection: close\r\n\r\n`));
    expect(ok.statuses).toEqual([200]);
  });

  it('a token is bound to its host: the one for localhost is refused on vb.test, where the rules deny everything', async () => {
    const res = await fetch(`${hp.url}/token?service=registry-proxy&scope=repository:team/app:pull`, { headers: { authorization: basic } });
    const t = ((await res.json()) as { token: string }).token;
    const reply = await raw(hport, (sock) => write(sock, `GET /v2/team/app/tags/list HTTP/1.1\r\nHost: vb.test\r\nAuthorization: Bearer ${t}\r\nConnection: close\r\n\r\n`));
    expect(reply.statuses).toEqual([401]);
  });

  it('an unbound token (signed by the proxy key, no host claim) is refused while rules name hosts', async () => {
    const keys = await KeySet.fromPem(w.signingKeyPem);
    const service = new TokenService({ issuer: 'registry-proxy', service: 'registry-proxy', keys, accessTokenTtl: 60, refreshTokenTtl: 60, algorithms: ['ES256'], clockTolerance: 0 });
    const unbound = (await service.issueAccessToken('alice', [{ type: 'repository', name: 'team/app', actions: ['pull'] }])).token;
    for (const host of ['vb.test', 'localhost']) {
      const reply = await raw(hport, (sock) => write(sock, `GET /v2/team/app/tags/list HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer ${unbound}\r\nConnection: close\r\n\r\n`));
      expect([host, reply.statuses]).toEqual([host, [401]]);
      expect(reply.text).toContain('error="invalid_token"');
    }
  });
});

describe('defect 6: grants are per upstream (registry), in ?ns=, prefix and host routing', () => {
  let mp: TestProxy;
  const creds = { type: 'static', username: UPSTREAM_USER.username, password: UPSTREAM_USER.password };
  const basic = (u: string) => `Basic ${Buffer.from(`${u}:${USERS[u as keyof typeof USERS]}`).toString('base64')}`;
  beforeAll(async () => {
    // Two mirrored registries and two virtual hosts, all in front of the same real registry,
    // so every one of them has a team/app.
    mp = await startTestProxy({
      auth: [{ type: 'static', users: ['alice', 'bob'].map((u) => ({ username: u, passwordHash: bcrypt.hashSync(USERS[u as keyof typeof USERS], 4) })) }],
      rules: [
        { account: 'alice', upstreams: ['quay', 'h1'], repository: ['team/**', 'q/**', 'g/**'], actions: ['pull'] },
        { account: 'bob', repository: 'team/**', actions: ['pull'] },
      ],
      upstreams: [
        { name: 'quay', mirrorOf: ['quay.localtest'], prefix: 'q', url: w.registry.url, credentials: creds },
        { name: 'ghcr', mirrorOf: ['ghcr.localtest'], prefix: 'g', url: w.registry.url, credentials: creds },
        { name: 'h1', hosts: ['h1.localtest'], url: w.registry.url, credentials: creds },
        { name: 'h2', hosts: ['h2.localtest'], url: w.registry.url, credentials: creds },
      ],
    });
  });
  afterAll(() => mp?.close());

  const port = () => Number(new URL(mp.url).port);
  async function ask(user: string, scope: string, host = mp.host): Promise<{ token: string; scope?: string }> {
    const r = await raw(port(), (s) => write(s, `GET /token?service=registry-proxy&scope=${scope} HTTP/1.1\r\nHost: ${host}\r\nAuthorization: ${basic(user)}\r\nConnection: close\r\n\r\n`));
    return bodyOf(r.text) as { token: string };
  }
  async function status(path: string, t: string, host = mp.host): Promise<number> {
    const r = await raw(port(), (s) =>
      write(s, `HEAD ${path} HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer ${t}\r\nAccept: application/vnd.oci.image.manifest.v1+json\r\nConnection: close\r\n\r\n`),
    );
    return r.statuses[0] as number;
  }

  it('?ns=: a token for quay.localtest/team/app is refused on ghcr.localtest/team/app', async () => {
    const bob = await ask('bob', 'repository:quay.localtest/team/app:pull');
    expect(await status('/v2/team/app/manifests/v1?ns=quay.localtest', bob.token)).toBe(200);
    expect(await status('/v2/team/app/manifests/v1?ns=ghcr.localtest', bob.token)).toBe(401);
  });

  it('rules name upstreams: alice may pull team/** on quay and h1 only', async () => {
    const both = await ask('alice', 'repository:quay.localtest/team/app:pull&scope=repository:ghcr.localtest/team/app:pull');
    expect(await status('/v2/team/app/manifests/v1?ns=quay.localtest', both.token)).toBe(200);
    expect(await status('/v2/team/app/manifests/v1?ns=ghcr.localtest', both.token)).toBe(401);
    // The same upstreams by prefix routing.
    const byPrefix = await ask('alice', 'repository:q/team/app:pull&scope=repository:g/team/app:pull');
    expect(await status('/v2/q/team/app/manifests/v1', byPrefix.token)).toBe(200);
    expect(await status('/v2/g/team/app/manifests/v1', byPrefix.token)).toBe(401);
  });

  it('host routing: a token asked on h2.localtest is refused on h1.localtest for the same name, and the other way round', async () => {
    const bobH2 = await ask('bob', 'repository:team/app:pull', 'h2.localtest');
    expect(await status('/v2/team/app/manifests/v1', bobH2.token, 'h2.localtest')).toBe(200);
    expect(await status('/v2/team/app/manifests/v1', bobH2.token, 'h1.localtest')).toBe(401);
    const aliceH1 = await ask('alice', 'repository:team/app:pull', 'h1.localtest');
    expect(await status('/v2/team/app/manifests/v1', aliceH1.token, 'h1.localtest')).toBe(200);
    expect(await status('/v2/team/app/manifests/v1', aliceH1.token, 'h2.localtest')).toBe(401);
    const aliceH2 = await ask('alice', 'repository:team/app:pull', 'h2.localtest');
    expect(await status('/v2/team/app/manifests/v1', aliceH2.token, 'h2.localtest')).toBe(401);
  });
});

describe('defect 8: Expect: 100-continue is answered only after authorization', () => {
  const put = (auth: string, name = 'push/cont') =>
    `PUT /v2/${name}/manifests/v1 HTTP/1.1\r\nHost: ${w.proxy.host}\r\n${auth}Content-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: 3000000\r\nExpect: 100-continue\r\n\r\n`;

  /** Sends the head, waits for the proxy's first answer, and sends the body only after a 100. */
  const attempt = (auth: string, name?: string) =>
    raw(
      port,
      async (sock, seen) => {
        await write(sock, put(auth, name));
        const deadline = Date.now() + 3000;
        while (!/^HTTP\/1\.1 \d{3}/.test(seen()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
        if (seen().startsWith('HTTP/1.1 100')) await write(sock, Buffer.alloc(3_000_000, 0x20)).catch(() => undefined);
      },
      2500,
    );

  it.each([
    ['no token', ''],
    ['a forged token', 'Authorization: Bearer eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln\r\n'],
  ])('%s: 401 without a 100, and the connection is closed', async (_what, auth) => {
    const reply = await attempt(auth);
    expect(reply.statuses).toEqual([401]);
    expect(reply.text).toMatch(/\r\nconnection: close\r\n/i);
    expect(reply.closed).toBe(true);
  });

  it('a token without push: 401 insufficient_scope without a 100', async () => {
    const t = await token(w, 'alice', 'repository:team/app:pull');
    const reply = await attempt(`Authorization: Bearer ${t}\r\n`, 'team/app');
    expect(reply.statuses).toEqual([401]);
    expect(reply.text).toContain('error="insufficient_scope"');
  });

  it('a token with push: 100, then the body, then the answer (here the real registry refusing a manifest of spaces)', async () => {
    const t = await token(w, 'alice', 'repository:push/cont:pull,push');
    const reply = await attempt(`Authorization: Bearer ${t}\r\n`);
    expect(reply.statuses[0]).toBe(100);
    expect(reply.statuses[1]).toBe(400);
    expect(errorCodes(reply.text.slice(reply.text.indexOf('\r\n\r\n') + 4))).toEqual(['MANIFEST_INVALID']);
  });

  it('on the base endpoint /v2 (no slash) too: 401 without a 100 (found by the fuzzer)', async () => {
    const reply = await raw(port, (sock) => write(sock, `GET /v2 HTTP/1.1\r\nHost: ${w.proxy.host}\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n`), 2500);
    expect(reply.statuses).toEqual([401]);
  });

  it('any other Expect: 417 in the registry format', async () => {
    const reply = await raw(port, (sock) => write(sock, `GET /v2/ HTTP/1.1\r\nHost: ${w.proxy.host}\r\nExpect: something-else\r\nConnection: close\r\n\r\n`));
    expect(reply.statuses).toEqual([417]);
    expect(errorCodes(reply.text)).toEqual(['UNSUPPORTED']);
  });

  it('an Expect on the token endpoint is answered at once (it needs the form to authenticate)', async () => {
    const body = `grant_type=password&username=alice&password=${USERS.alice}&service=registry-proxy&scope=repository:team/app:pull`;
    const reply = await raw(port, async (sock, seen) => {
      await write(
        sock,
        `POST /token HTTP/1.1\r\nHost: ${w.proxy.host}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: ${body.length}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n`,
      );
      while (!seen().startsWith('HTTP/1.1 100')) await new Promise((r) => setTimeout(r, 10));
      await write(sock, body);
    });
    expect(reply.statuses).toEqual([100, 200]);
  });
});
