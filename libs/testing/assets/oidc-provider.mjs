// A real OpenID Provider (panva/oidc-provider) for tests, in its own process. Its settings come
// as JSON in argv[2]: { port, issuer, jwks, clients, ttl, extraClaims }. It issues JWT access
// tokens to client_credentials requests that name a resource (RFC 8707), opaque tokens
// otherwise, and serves discovery, JWKS and RFC 7662 introspection. Prints "ready" when listening.
//
// With `accountsFile` it also signs people in through a browser: oidc-provider's own login and
// consent pages (any password: its development interactions), the authorization-code flow
// with PKCE and refresh tokens, and accounts (their claims, e.g. groups) read from that JSON
// file at every use, so a test can change a person's groups or remove them between sign-ins.
import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const cfg = JSON.parse(process.argv[2]);
const accounts = () => JSON.parse(readFileSync(cfg.accountsFile, 'utf8'));
const provider = new Provider(cfg.issuer, {
  clients: cfg.clients,
  jwks: cfg.jwks,
  ...(cfg.accountsFile
    ? {
        findAccount: (_ctx, id) => {
          const a = accounts()[id];
          return a ? { accountId: id, claims: () => ({ sub: id, ...a }) } : undefined;
        },
        claims: { openid: ['sub'], profile: ['name'], groups: ['groups'] },
        conformIdTokenClaims: false,
      }
    : {}),
  features: {
    devInteractions: { enabled: Boolean(cfg.accountsFile) },
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
  scopes: cfg.accountsFile ? ['openid', 'offline_access', 'profile', 'groups', 'registry'] : ['registry'],
  ttl: { ClientCredentials: cfg.ttl ?? 300 },
  extraTokenClaims: () => cfg.extraClaims ?? {},
});
provider.proxy = false;
const server = provider.listen(cfg.port, '127.0.0.1', () => console.log('ready'));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
