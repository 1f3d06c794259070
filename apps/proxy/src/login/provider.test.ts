import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AuthBackendError } from '@registry-proxy/registry-core';
import { LoginProvider } from './provider.js';

/**
 * A minimal OpenID provider stand-in on loopback: the discovery document and a token endpoint
 * whose answer each test chooses (status + OAuth error body, as RFC 6749 section 5.2 words it).
 */
async function provider(token: { status: number; body: unknown }): Promise<{ server: Server; issuer: string }> {
  const server = createServer((req, res) => {
    const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    if (req.url === '/.well-known/openid-configuration') {
      res.setHeader('content-type', 'application/json');
      res.end(
        JSON.stringify({
          issuer,
          authorization_endpoint: `${issuer}/auth`,
          token_endpoint: `${issuer}/token`,
          jwks_uri: `${issuer}/jwks`,
          response_types_supported: ['code'],
          subject_types_supported: ['public'],
          id_token_signing_alg_values_supported: ['RS256'],
        }),
      );
      return;
    }
    req.resume();
    req.on('end', () => {
      res.statusCode = token.status;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(token.body));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, issuer: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

describe('LoginProvider.refresh', () => {
  const cases: Array<[string, number, string, 'gone' | 'unavailable']> = [
    ['invalid_grant (revoked, expired, person gone)', 400, 'invalid_grant', 'gone'],
    ['server_error', 500, 'server_error', 'unavailable'],
    ['temporarily_unavailable', 503, 'temporarily_unavailable', 'unavailable'],
    ['regression: invalid_client (our client credentials are wrong, not the person)', 401, 'invalid_client', 'unavailable'],
  ];
  it.each(cases)('%s', async (_label, status, error, expected) => {
    const { server, issuer } = await provider({ status, body: { error } });
    try {
      const p = new LoginProvider({ issuer, clientId: 'c', clientSecret: 's', scopes: ['openid'], allowInsecure: true, timeoutMs: 2000 });
      const out = p.refresh('idp-refresh-token');
      // Only a refused grant says the person is gone (their secret is then deleted); a provider
      // that fails or a client misconfiguration must not wipe everyone's secrets.
      if (expected === 'gone') await expect(out).resolves.toBeUndefined();
      else await expect(out).rejects.toBeInstanceOf(AuthBackendError);
    } finally {
      server.close();
    }
  });
});

describe('LoginProvider when the provider is down or slow', () => {
  it('answers AuthBackendError (the 503 page) when nothing listens', async () => {
    const s = createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    const port = (s.address() as AddressInfo).port;
    await new Promise((r) => s.close(r));
    const p = new LoginProvider({ issuer: `http://127.0.0.1:${port}`, clientId: 'c', clientSecret: 's', scopes: ['openid'], allowInsecure: true, timeoutMs: 1000 });
    await expect(p.start('http://127.0.0.1/login/callback')).rejects.toBeInstanceOf(AuthBackendError);
  });

  it('gives up after timeoutMs when the provider does not answer, and tries again on the next sign-in', async () => {
    let hang = true;
    const { server, issuer } = await provider({ status: 400, body: { error: 'invalid_grant' } });
    const answer = server.listeners('request')[0] as (...a: unknown[]) => void;
    server.removeAllListeners('request');
    server.on('request', (req, res) => {
      if (!hang) answer(req, res);
    });
    try {
      const p = new LoginProvider({ issuer, clientId: 'c', clientSecret: 's', scopes: ['openid'], allowInsecure: true, timeoutMs: 1000 });
      const t0 = Date.now();
      await expect(p.start(`${issuer}/cb`)).rejects.toBeInstanceOf(AuthBackendError);
      expect(Date.now() - t0).toBeLessThan(3000);
      hang = false;
      await expect(p.start(`${issuer}/cb`)).resolves.toMatchObject({ url: expect.stringContaining(`${issuer}/auth?`) });
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });
});
