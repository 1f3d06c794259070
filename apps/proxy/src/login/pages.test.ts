import { parseConfig } from '../config/load.js';
import { CONTENT_SECURITY_POLICY, accountPage, errorPage } from './pages.js';

describe('sign-in pages', () => {
  it('escape everything that comes from a person or a provider', () => {
    const html = accountPage({ subject: '<script>x</script>', groups: ['"><img src=x>'], registry: 'r.example', csrf: 'c"srf', secrets: [] });
    expect(html).not.toMatch(/<script>|<img /);
    expect(html).toContain('&#60;script&#62;');
    expect(errorPage('<b>boom</b>')).not.toContain('<b>');
  });
  it('load no scripts and nothing from elsewhere', () => {
    const html = accountPage({ subject: 'alice', groups: [], registry: 'r.example', csrf: 'c', secrets: [] });
    expect(html).not.toMatch(/<script|style=|https?:\/\//);
    expect(CONTENT_SECURITY_POLICY).toContain("default-src 'none'");
    expect(CONTENT_SECURITY_POLICY).not.toMatch(/unsafe|\*/);
  });
});

describe('login configuration', () => {
  const base = 'upstreams: [{name: u, url: "http://127.0.0.1:1"}]\n';
  it('needs the issuer of an oidc auth entry, and names the key when it is not', () => {
    expect(() => parseConfig(`${base}login: {issuer: "https://sso.example.com", clientId: c, clientSecret: s}\n`, 'cfg')).toThrow(/login\.issuer: must be the issuer of an `oidc` auth entry/);
    const ok = parseConfig(
      `${base}auth: [{type: oidc, issuers: [{issuer: "https://sso.example.com", audiences: [a]}]}]\nlogin: {issuer: "https://sso.example.com", clientId: c, clientSecret: s}\n`,
      'cfg',
    );
    expect(ok.login).toMatchObject({ scopes: ['openid', 'profile', 'offline_access'], secretTtlSeconds: 2592000, revalidateAfterSeconds: 900 });
  });
});
