import { RegistryError } from '../errors.js';
import { parseBasicAuthorization } from '../identity.js';
import { parseScopes, type Access } from '../scope.js';

/** A token request, from a GET with Basic credentials or a POST OAuth2 form (distribution's token.md / oauth.md). */
export type TokenRequest = {
  readonly service: string | undefined;
  readonly clientId: string | undefined;
  readonly scopes: readonly Access[];
  /** A refresh token was asked for (`offline_token=true` on GET, `access_type=offline` on POST). */
  readonly offline: boolean;
  readonly form: boolean;
} & ({ readonly grant: 'password'; readonly username: string; readonly password: string } | { readonly grant: 'refresh_token'; readonly refreshToken: string } | { readonly grant: 'anonymous' });

const bad = (message: string) => new RegistryError('REQUEST_INVALID', { message });

function scopesOf(values: string[]): Access[] {
  try {
    return parseScopes(values);
  } catch {
    throw bad('invalid scope');
  }
}

/** Parses a token request; throws a {@link RegistryError} (400) on malformed input. */
export function parseTokenRequest(input: { method: string; query: URLSearchParams; form?: URLSearchParams | undefined; authorization?: string | undefined }): TokenRequest {
  if (input.method === 'POST') {
    const f = input.form ?? new URLSearchParams();
    const common = {
      service: f.get('service') ?? undefined,
      clientId: f.get('client_id') ?? undefined,
      scopes: scopesOf(f.getAll('scope')),
      offline: f.get('access_type') === 'offline',
      form: true,
    };
    const grant = f.get('grant_type');
    if (grant === 'password') {
      const username = f.get('username');
      const password = f.get('password');
      if (!username || password === null) throw bad('password grant needs username and password');
      return { ...common, grant, username, password };
    }
    if (grant === 'refresh_token') {
      const refreshToken = f.get('refresh_token');
      if (!refreshToken) throw bad('refresh_token grant needs refresh_token');
      return { ...common, grant, refreshToken };
    }
    throw bad(`unsupported grant_type ${JSON.stringify(grant ?? '')}`);
  }
  const q = input.query;
  const common = {
    service: q.get('service') ?? undefined,
    clientId: q.get('client_id') ?? undefined,
    scopes: scopesOf(q.getAll('scope')),
    offline: q.get('offline_token') === 'true',
    form: false,
  };
  const basic = parseBasicAuthorization(input.authorization);
  if (basic === null) throw new RegistryError('UNAUTHORIZED', { message: 'malformed Basic credentials' });
  if (basic === undefined) {
    if (input.authorization !== undefined) throw new RegistryError('UNAUTHORIZED', { message: 'token requests take Basic credentials' });
    return { ...common, grant: 'anonymous' };
  }
  return { ...common, grant: 'password', username: basic.username, password: basic.password };
}
