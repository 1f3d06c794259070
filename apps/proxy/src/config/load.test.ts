import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isBcryptHash } from '@registry-proxy/auth-static';
import { DEFAULT_CONFIG_YAML } from './default.js';
import { loadConfigFile, parseConfig, resolveSecret } from './load.js';
import type { Config } from './schema.js';

const minimal = 'upstreams:\n  - name: up\n    url: http://127.0.0.1:5000\n';

function staticAt(c: Config, i: number) {
  const a = c.auth[i];
  if (a?.type !== 'static') throw new Error(`auth.${i} is not static`);
  return a;
}

function messageOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    return (e as Error).message;
  }
  return 'no error';
}

describe('configuration', () => {
  it('fills defaults and freezes the result', () => {
    const c = parseConfig(minimal, 't');
    expect(c.listen).toEqual({ host: '127.0.0.1', port: 5000 });
    expect(c.tokens.ttlSeconds).toBe(300);
    expect(c.upstreams[0]).toMatchObject({ prefix: '', namespace: '', redirects: 'follow', credentials: { type: 'anonymous' }, attempts: 3 });
    expect(c.upstreams[0]?.timeouts).toEqual({ connectMs: 10_000, headersMs: 30_000, bodyIdleMs: 60_000 });
    expect(Object.isFrozen(c.upstreams[0]?.timeouts)).toBe(true);
  });

  it('parses the embedded default', () => {
    const c = parseConfig(DEFAULT_CONFIG_YAML, 'default');
    expect(c.upstreams[0]?.url).toBe('https://registry-1.docker.io');
    expect(staticAt(c, 0).users[0]?.username).toBe('demo');
  });

  it('parses the example in docs/configuration.md, so the documentation stays true', () => {
    const doc = readFileSync(join(__dirname, '../../../../docs/configuration.md'), 'utf8');
    const yaml = /```yaml\n([\s\S]*?)```/.exec(doc)?.[1] ?? '';
    const c = parseConfig(yaml, 'docs/configuration.md');
    expect(c.upstreams.map((u) => [u.name, u.credentials.type])).toEqual([
      ['gcr', 'gcp'],
      ['ecr', 'ecr'],
      ['acr', 'acr'],
      ['quay', 'docker-config'],
      ['internal', 'anonymous'],
      ['hub', 'static'],
    ]);
    expect(c.listen.tls?.reloadIntervalMs).toBe(5000);
    expect(c.trustedProxies).toEqual(['10.0.0.0/8']);
    expect(c.rules).toHaveLength(5);
    expect(c.rules[4]).toMatchObject({ upstreams: ['quay'] });
    expect(staticAt(c, 0).groups).toEqual({ 'registry-admins': ['alice'] });
    expect(isBcryptHash(staticAt(c, 0).users[0]?.passwordHash ?? '')).toBe(true);
    expect(c.auth[1]).toMatchObject({ type: 'ldap', url: 'ldaps://ldap.example.com:636', bindCredentials: { file: '/run/secrets/ldap-bind' }, cacheSeconds: 60 });
    expect(c.auth[3]).toMatchObject({ type: 'iid', azure: { roots: [{ file: '/etc/registry-proxy/azure/roots.pem' }], signerNames: ['metadata.azure.com'] } });
    expect(c.upstreams.find((u) => u.name === 'acr')?.credentials).toEqual({ type: 'acr', identity: { type: 'managed-identity' } });
  });

  it('parses the Many replicas example in docs/configuration.md; without state.redis there is none', () => {
    const doc = readFileSync(join(__dirname, '../../../../docs/configuration.md'), 'utf8');
    const yaml = /### Many replicas[\s\S]*?```yaml\n([\s\S]*?)```/.exec(doc)?.[1] ?? '';
    expect(parseConfig(yaml + minimal, 'docs/configuration.md').state.redis).toEqual({
      url: { file: '/etc/registry-proxy/redis/url' },
      keyPrefix: 'registry-proxy:',
      commandTimeoutMs: 500,
      connectTimeoutMs: 2000,
    });
    expect(parseConfig(minimal, 'm').state).toEqual({});
  });

  it.each([
    ['listen:\n  port: "80"\n' + minimal, 'listen.port'],
    ['listen:\n  port: 70000\n' + minimal, 'listen.port'],
    ['upstreams: []', 'upstreams'],
    ['upstreams:\n  - name: Up\n    url: http://x', 'upstreams.0.name'],
    ['upstreams:\n  - name: up\n    url: ftp://x', 'upstreams.0.url'],
    ['upstreams:\n  - name: up\n    url: http://x\n    prefix: "Bad/"', 'upstreams.0.prefix'],
    ['upstreams:\n  - name: up\n    url: http://x\n    redirects: sometimes', 'upstreams.0.redirects'],
    ['upstreams:\n  - name: up\n    url: http://x\n    credentials: {type: static, username: u}', 'upstreams.0.credentials.password'],
    [minimal + 'tokens:\n  ttlSeconds: 10\n', 'tokens.ttlSeconds'],
    [minimal + 'rules:\n  - repository: "**"\n    actions: [fly]\n', 'rules.0.actions.0'],
    [minimal + 'auth:\n  - type: kerberos\n', 'auth.0.type'],
    [minimal + 'auth:\n  - type: iid\n    azure: {roots: []}\n', 'auth.0.azure.roots'],
    ['upstreams:\n  - name: up\n    url: http://x\n    credentials: {type: acr, identity: {type: service-principal, clientId: c, clientSecret: s}}', 'upstreams.0.credentials.identity.tenantId'],
    ['upstreams:\n  - name: up\n    url: http://x\n    credentials: {type: acr, identity: {type: workload-identity}}', 'upstreams.0.credentials.identity.type'],
    [minimal + 'typo: 1\n', 'typo'],
    [minimal + 'state:\n  redis: {}\n', 'state.redis.url'],
    [minimal + 'state:\n  redis: {url: "redis://r:6379", commandTimeoutMs: 0}\n', 'state.redis.commandTimeoutMs'],
    [minimal + 'state:\n  redis: {url: "redis://r:6379", timeout: 5}\n', 'state.redis.timeout'],
    [minimal + 'state:\n  memcached: {}\n', 'state.memcached'],
  ])('names the bad key: %j', (text, key) => {
    const m = messageOf(() => parseConfig(text, 'proxy.yaml'));
    expect(m).toMatch(/^RP_ERR_CONFIG_INVALID/);
    expect(m).toContain(`proxy.yaml: ${key}:`);
  });

  it('refuses upstreams that would shadow each other, naming both', () => {
    const two = (a: string, b: string) => `upstreams:\n  - {name: a, url: http://127.0.0.1:1, ${a}}\n  - {name: b, url: http://127.0.0.1:2, ${b}}\n`;
    expect(messageOf(() => parseConfig(two('prefix: x', 'prefix: x'), 't'))).toContain('t: upstreams.1.prefix: prefix "x" is already used by upstreams.0');
    expect(messageOf(() => parseConfig(two('mirrorOf: [docker.io]', 'mirrorOf: [registry-1.docker.io]'), 't'))).toContain(
      'upstreams.1.mirrorOf: mirror of registry-1.docker.io is already used by upstreams.0',
    );
    expect(messageOf(() => parseConfig(two('hosts: [a.example]', 'hosts: [A.example]'), 't'))).toContain('upstreams.1.prefix: host a.example with prefix "" is already used by upstreams.0');
    expect(messageOf(() => parseConfig(two('hosts: ["a b"]', 'prefix: y'), 't'))).toContain('upstreams.0.hosts.0: a host name, optionally with :port');
    expect(messageOf(() => parseConfig('upstreams:\n  - {name: a, url: http://127.0.0.1:1}\n  - {name: a, url: http://127.0.0.1:2, prefix: z}\n', 't'))).toContain(
      'upstreams.1.name: name "a" is already used by upstreams.0',
    );
    // The same prefix on different hosts is fine.
    expect(() => parseConfig(two('hosts: [a.example]', 'hosts: [b.example]'), 't')).not.toThrow();
  });

  it('refuses a rule naming an upstream that does not exist (a deny rule with a typo would fail open)', () => {
    const cfg = (u: string) => `upstreams:\n  - {name: quay, url: http://127.0.0.1:1}\nrules:\n  - {account: x, upstreams: [${u}], repository: '**', actions: []}\n`;
    expect(messageOf(() => parseConfig(cfg('quya'), 't'))).toContain('t: rules.0.upstreams.0: matches no upstream name (quay)');
    expect(() => parseConfig(cfg('qu*'), 't')).not.toThrow();
  });

  it('refuses bad YAML and unreadable files', () => {
    expect(messageOf(() => parseConfig('a: [', 'f'))).toMatch(/RP_ERR_CONFIG_INVALID: f: not valid YAML/);
    expect(messageOf(() => loadConfigFile('/nonexistent/proxy.yaml'))).toMatch(/RP_ERR_CONFIG_READ: .*ENOENT/);
  });

  it('resolves secrets inline, from the environment and from files, naming the key on failure', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rp-cfg-'));
    writeFileSync(join(dir, 'pw'), 's3cret\n');
    expect(resolveSecret('inline', 'k')).toBe('inline');
    expect(resolveSecret({ env: 'RP_TEST_PW' }, 'k', { RP_TEST_PW: 'fromenv' })).toBe('fromenv');
    expect(resolveSecret({ file: join(dir, 'pw') }, 'k')).toBe('s3cret');
    expect(messageOf(() => resolveSecret({ env: 'RP_MISSING' }, 'upstreams.0.credentials.password', {}))).toBe(
      'RP_ERR_CONFIG_READ: upstreams.0.credentials.password: environment variable RP_MISSING is not set',
    );
    expect(messageOf(() => resolveSecret({ file: join(dir, 'nope') }, 'tokens.signingKey'))).toMatch(/tokens.signingKey: cannot read .*ENOENT/);
  });

  describe('upstreams[].cache', () => {
    const withCache = (cache: string) => `upstreams:\n  - name: up\n    url: http://127.0.0.1:5000\n    cache: ${cache}\n`;

    it('is off unless configured', () => {
      expect(parseConfig(minimal, 't').upstreams[0]?.cache).toBeUndefined();
    });

    it('takes sizes with units and fills the freshness defaults', () => {
      const c = parseConfig(withCache('{store: {type: filesystem, path: /var/cache/rp}, maxBytes: 50GiB}'), 't');
      expect(c.upstreams[0]?.cache).toEqual({ store: { type: 'filesystem', path: '/var/cache/rp' }, maxBytes: 50 * 2 ** 30, tagFreshnessSeconds: 300, staleIfErrorSeconds: 86_400 });
      expect(parseConfig(withCache('{store: {type: filesystem, path: /c}, maxBytes: 10GB}'), 't').upstreams[0]?.cache?.maxBytes).toBe(10e9);
    });

    it('names the bad key', () => {
      expect(messageOf(() => parseConfig(withCache('{store: {type: filesystem, path: /c}, maxBytes: lots}'), 't'))).toMatch(/upstreams\.0\.cache\.maxBytes/);
      expect(messageOf(() => parseConfig(withCache('{store: {type: s3}, maxBytes: 1GiB}'), 't'))).toMatch(/upstreams\.0\.cache\.store/);
      expect(messageOf(() => parseConfig(withCache('{store: {type: filesystem, path: /c}, maxBytes: 1GiB, staleIfError: 5}'), 't'))).toMatch(/staleIfError/);
    });

    it('upstreams sharing a store directory must agree on its size', () => {
      const two = `upstreams:
  - {name: a, prefix: a, url: http://127.0.0.1:5000, cache: {store: {type: filesystem, path: /c}, maxBytes: 1GiB}}
  - {name: b, prefix: b, url: http://127.0.0.1:5001, cache: {store: {type: filesystem, path: /c}, maxBytes: 2GiB}}
`;
      expect(messageOf(() => parseConfig(two, 't'))).toMatch(/upstreams\.1\.cache\.maxBytes.*upstreams\.0/);
    });

    it("regression: upstreams sharing a registry store (url and repository) must agree on its size and settings (only the first one's were used)", () => {
      const store = (extra: string) => `{type: registry, url: "http://127.0.0.1:6000", repository: cache/x${extra}}`;
      const two = (a: string, b: string) => `upstreams:
  - {name: a, prefix: a, url: http://127.0.0.1:5000, cache: {store: ${a}}}
  - {name: b, prefix: b, url: http://127.0.0.1:5001, cache: {store: ${b}}}
`;
      expect(messageOf(() => parseConfig(two(`${store('')}, maxBytes: 1GiB`, `${store('')}, maxBytes: 2GiB`), 't'))).toMatch(/upstreams\.1\.cache\.maxBytes.*upstreams\.0/);
      expect(messageOf(() => parseConfig(two(`${store('')}, maxBytes: 1GiB`, `${store(', spoolDir: /elsewhere')}, maxBytes: 1GiB`), 't'))).toMatch(/upstreams\.1\.cache\.store.*upstreams\.0/);
      expect(parseConfig(two(`${store('')}, maxBytes: 1GiB`, `${store('')}, maxBytes: 1GiB`), 't').upstreams[1]?.cache?.maxBytes).toBe(2 ** 30);
      // Another repository of the same registry is another store.
      expect(parseConfig(two(`${store('')}, maxBytes: 1GiB`, `${store('y')}, maxBytes: 2GiB`), 't').upstreams[1]?.cache?.maxBytes).toBe(2 * 2 ** 30);
    });

    it('regression: refuses a registry store URL with credentials in it (they would be logged with the store name); credentials go in credentials', () => {
      const msg = messageOf(() => parseConfig(withCache('{store: {type: registry, url: "https://writer:s3cret@cache.internal:5000"}, maxBytes: 1GiB}'), 't'));
      expect(msg).toMatch(/upstreams\.0\.cache\.store\.url.*credentials/);
      expect(msg).not.toContain('s3cret');
    });
  });
});

describe('configuration of logins (issue 11: defects 4, 5, 7, 11)', () => {
  it('has defaults for limits, password checks, reloading and refresh re-checks', () => {
    const c = parseConfig(minimal, 't');
    expect(c.rateLimits.failures).toEqual({ points: 10, durationSeconds: 300 });
    expect(c.passwordChecks).toEqual({ maxQueue: 32 });
    expect(c.authFiles).toEqual({ reloadIntervalMs: 1000 });
    expect(c.tokens.revalidateAfterSeconds).toBe(600);
    expect(c.tokens.revocationsFile).toBeUndefined();
    expect(staticAt(parseConfig(`${minimal}auth: [{type: static, users: []}]\n`, 't'), 0).cacheSeconds).toBe(60);
  });
  it.each([
    ['tokens: {revalidateAfterSeconds: -1}', 't: tokens.revalidateAfterSeconds:'],
    ['tokens: {revocationsFile: ""}', 't: tokens.revocationsFile:'],
    ['rateLimits: {failures: {points: 0}}', 't: rateLimits.failures.points:'],
    ['rateLimits: {failures: {window: 3}}', 't: rateLimits.failures.window: unknown key'],
    ['passwordChecks: {maxQueue: 0}', 't: passwordChecks.maxQueue:'],
    ['passwordChecks: {workers: 99}', 't: passwordChecks.workers:'],
    ['authFiles: {reloadIntervalMs: 5}', 't: authFiles.reloadIntervalMs:'],
    ['auth: [{type: static, cacheSeconds: -5}]', 't: auth.0.cacheSeconds:'],
  ])('names the bad key: %s', (yaml, expected) => {
    expect(messageOf(() => parseConfig(`${minimal}${yaml}\n`, 't'))).toContain(expected);
  });
});
