import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, startDaemon, waitFor, type Daemon } from './proc.js';

/** A real distribution `docker-registry` with htpasswd (bcrypt) authentication, on loopback. */
export interface TestRegistry {
  readonly url: string;
  readonly host: string;
  readonly dir: string;
  stop(): Promise<void>;
  /** The docker-registry process id (while it runs). */
  readonly pid?: number | undefined;
  /** SIGKILL, no goodbye (a crash mid-request); waits for the process to go. */
  kill?(): Promise<void>;
  /** Starts it again after stop/kill: same port, same storage. */
  start?(): Promise<void>;
}

/** `deleteEnabled: false` starts it with `storage.delete.enabled: false` (DELETE answers 405), as distribution ships. */
export async function startRegistry(users: Record<string, string>, opts: { deleteEnabled?: boolean } = {}): Promise<TestRegistry> {
  const del = opts.deleteEnabled ?? true;
  const dir = mkdtempSync(join(tmpdir(), 'rp-registry-'));
  const htpasswd = join(dir, 'htpasswd');
  writeFileSync(
    htpasswd,
    Object.entries(users)
      .map(([u, p]) => execFileSync('htpasswd', ['-nbB', u, p]).toString().trim())
      .join('\n') + '\n',
  );
  const auth = `{htpasswd: {realm: test-registry, path: ${htpasswd}}}`;
  let r = await serve(dir, auth, 401, undefined, del);
  const port = Number(new URL(r.url).port);
  return {
    url: r.url,
    host: r.host,
    dir,
    get pid() {
      return r.daemon.child.exitCode === null && r.daemon.child.signalCode === null ? r.daemon.child.pid : undefined;
    },
    stop: () => r.daemon.stop(),
    async kill() {
      const c = r.daemon.child;
      if (c.exitCode !== null || c.signalCode !== null) return;
      const gone = new Promise((res) => c.once('exit', res));
      c.kill('SIGKILL');
      await gone;
    },
    async start() {
      r = await serve(dir, auth, 401, port, del);
    },
  };
}

/** Starts docker-registry on a free loopback port with the given `auth:` section; waits until /v2/ answers `ready`. */
async function serve(dir: string, auth: string, ready: number, onPort?: number, deleteEnabled = true): Promise<{ url: string; host: string; daemon: Daemon }> {
  const port = onPort ?? (await freePort());
  writeFileSync(
    join(dir, 'config.yml'),
    `version: 0.1
log: {level: warn}
storage: {filesystem: {rootdirectory: ${dir}/data}, delete: {enabled: ${deleteEnabled}}}
http: {addr: 127.0.0.1:${port}, secret: test-only}
auth: ${auth}
`,
  );
  const daemon: Daemon = startDaemon('docker-registry', ['serve', join(dir, 'config.yml')], join(dir, 'registry.log'));
  const url = `http://127.0.0.1:${port}`;
  await waitFor('docker-registry', async () => (await fetch(`${url}/v2/`)).status === ready);
  return { url, host: `127.0.0.1:${port}`, daemon };
}

/**
 * A docker-registry with `auth: token`, and its token realm on another port, the layout of
 * Docker Hub, GHCR and Quay: the realm checks Basic credentials (a user and a PAT) and issues
 * ES256 JWTs whose x5c header carries a certificate the registry trusts (rootcertbundle).
 */
export interface TokenRegistry extends TestRegistry {
  readonly realmUrl: string;
  /** Every request the realm got: the Basic user (or null) and the scopes asked for. */
  readonly realmRequests: Array<{ user: string | null; scopes: string[]; status: number }>;
}

export async function startTokenRegistry(users: Record<string, string>): Promise<TokenRegistry> {
  const { createServer } = await import('node:http');
  const { SignJWT, importPKCS8 } = await import('jose');
  const { randomUUID, X509Certificate } = await import('node:crypto');
  const dir = mkdtempSync(join(tmpdir(), 'rp-token-registry-'));
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'realm.key', '-out', 'realm.crt', '-days', '2', '-subj', '/CN=test token realm'],
    { cwd: dir, stdio: 'ignore' },
  );
  const { readFileSync } = await import('node:fs');
  const certDer = new X509Certificate(readFileSync(join(dir, 'realm.crt'))).raw.toString('base64');
  const key = await importPKCS8(readFileSync(join(dir, 'realm.key'), 'utf8'), 'ES256');
  const realmRequests: TokenRegistry['realmRequests'] = [];

  const realm = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const scopes = url.searchParams.getAll('scope');
    const auth = req.headers.authorization;
    let user: string | null = null;
    if (auth?.startsWith('Basic ')) {
      const [u, ...rest] = Buffer.from(auth.slice(6), 'base64').toString().split(':');
      if (u === undefined || users[u] !== rest.join(':')) {
        realmRequests.push({ user: u ?? null, scopes, status: 401 });
        res.writeHead(401, { 'content-type': 'application/json' }).end('{"details":"incorrect username or password"}');
        return;
      }
      user = u;
    }
    // Users get what they ask for; anonymous callers get nothing.
    const access =
      user === null
        ? []
        : scopes.map((s) => {
            const [type, name, actions] = s.split(':');
            return { type, name, actions: (actions ?? '').split(',') };
          });
    const now = Math.floor(Date.now() / 1000);
    void new SignJWT({ access })
      .setProtectedHeader({ alg: 'ES256', typ: 'JWT', x5c: [certDer] })
      .setIssuer('test-realm')
      .setSubject(user ?? '')
      .setAudience('test-registry')
      .setIssuedAt(now)
      .setNotBefore(now - 5)
      .setExpirationTime(now + 300)
      .setJti(randomUUID())
      .sign(key)
      .then((token) => {
        realmRequests.push({ user, scopes, status: 200 });
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token, expires_in: 300, issued_at: new Date().toISOString() }));
      });
  });
  await new Promise<void>((r) => realm.listen(0, '127.0.0.1', r));
  const realmUrl = `http://127.0.0.1:${(realm.address() as { port: number }).port}`;

  const r = await serve(dir, `{token: {realm: "${realmUrl}/token", service: test-registry, issuer: test-realm, rootcertbundle: ${join(dir, 'realm.crt')}}}`, 401);
  const { url, daemon } = r;
  return {
    url,
    host: r.host,
    dir,
    realmUrl,
    realmRequests,
    async stop() {
      realm.closeAllConnections();
      await new Promise((r) => realm.close(r));
      await daemon.stop();
    },
  };
}

/** docker-registry on a free loopback port with a given `auth:` section (YAML flow style), ready when /v2/ answers `ready`. */
export const startRegistryWithAuth = serve;
