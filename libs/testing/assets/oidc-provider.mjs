// A real OpenID Provider (panva/oidc-provider) for tests, in its own process. Its settings come
// as JSON in argv[2]: { port, issuer, jwks, clients, ttl, extraClaims }. It issues JWT access
// tokens to client_credentials requests that name a resource (RFC 8707), opaque tokens
// otherwise, and serves discovery, JWKS and RFC 7662 introspection. Prints "ready" when listening.
import Provider from 'oidc-provider';

const cfg = JSON.parse(process.argv[2]);
const provider = new Provider(cfg.issuer, {
  clients: cfg.clients,
  jwks: cfg.jwks,
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => undefined,
      useGrantedResource: () => true,
      getResourceServerInfo: (_ctx, resource) => ({
        scope: 'registry',
        audience: resource,
        accessTokenTTL: cfg.ttl ?? 300,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: cfg.alg ?? 'RS256' } },
      }),
    },
  },
  scopes: ['registry'],
  ttl: { ClientCredentials: cfg.ttl ?? 300 },
  extraTokenClaims: () => cfg.extraClaims ?? {},
});
provider.proxy = false;
const server = provider.listen(cfg.port, '127.0.0.1', () => console.log('ready'));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
