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
      res.end(JSON.stringify({ issuer, authorization_endpoint: `${issuer}/auth`, token_endpoint: `${issuer}/token`, jwks_uri: `${issuer}/jwks`, response_types_supported: ['code'], subject_types_supported: ['public'], id_token_signing_alg_values_supported: ['RS256'] }));
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
