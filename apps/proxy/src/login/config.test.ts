import { parseConfig } from '../config/load.js';

/** The `login` block's cross-checks with the `oidc` entry it borrows its claim mapping from. */
const config = (issuerExtra: string, loginExtra: string) => `
auth:
  - type: oidc
    issuers:
      - issuer: https://sso.example.com
        audiences: [registry-proxy]
${issuerExtra}
login:
  issuer: https://sso.example.com
  clientId: web
  clientSecret: s3cret
${loginExtra}
upstreams:
  - name: up
    url: http://127.0.0.1:5000
`;

function messageOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    return (e as Error).message;
  }
  return 'no error';
}

describe('login configuration', () => {
  it('accepts operatorGroups when the issuer maps a groups claim', () => {
    const c = parseConfig(config('        groupsClaim: groups', '  operatorGroups: [registry-admins]'), 't');
    expect(c.login?.operatorGroups).toEqual(['registry-admins']);
  });

  it('regression: refuses operatorGroups when the issuer maps no groups claim (nobody could ever be an operator)', () => {
    expect(messageOf(() => parseConfig(config('', '  operatorGroups: [registry-admins]'), 't'))).toMatch(/login\.operatorGroups.*groupsClaim/);
  });

  it('refuses a login issuer that no oidc entry has', () => {
    expect(messageOf(() => parseConfig(config('', '').replace('issuer: https://sso.example.com\n  clientId', 'issuer: https://other.example.com\n  clientId'), 't'))).toMatch(/login\.issuer/);
  });
});
