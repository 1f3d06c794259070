import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { normaliseRegistryHost } from '../reference.js';
import { CredentialError, ANONYMOUS_CREDENTIALS, type CredentialRequest, type UpstreamCredentialProvider, type UpstreamCredentials } from '../credentials.js';

export interface DockerConfigProviderOptions {
  /** The config.json; default `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`. */
  readonly path?: string;
  /** How long answers (from the file or a helper) are kept, in seconds. Default 300. */
  readonly cacheSeconds?: number;
  /** A credential helper that does not answer within this time fails. Default 10 s. */
  readonly helperTimeoutMs?: number;
  /** Environment for helpers (their PATH finds `docker-credential-<name>`). Default: this process's. */
  readonly env?: NodeJS.ProcessEnv;
}

interface AuthEntry {
  auth?: string;
  username?: string;
  password?: string;
  identitytoken?: string;
  registrytoken?: string;
}
interface DockerConfig {
  auths?: Record<string, AuthEntry>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
}

const NAME = 'docker-config';
/** Docker keeps Docker Hub's credentials under this key and asks helpers for it. */
const DOCKER_HUB_KEY = 'https://index.docker.io/v1/';

/** `https://host:port/path` or `host:port` → `host:port`, Docker Hub's names → `docker.io`. */
export function normaliseConfigKey(key: string): string {
  const host = key
    .replace(/^[a-z]+:\/\//i, '')
    .replace(/\/.*$/, '')
    .toLowerCase();
  return normaliseRegistryHost(host);
}

function fromEntry(e: AuthEntry, where: string): UpstreamCredentials | undefined {
  if (e.identitytoken) throw new CredentialError(NAME, `${where}: identity tokens (OAuth refresh tokens) are not supported; use a username and password or access token`);
  if (e.registrytoken) return { kind: 'bearer', token: e.registrytoken };
  if (e.username && e.password) return { kind: 'basic', username: e.username, password: e.password };
  if (e.auth) {
    const decoded = Buffer.from(e.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon <= 0) throw new CredentialError(NAME, `${where}: "auth" is not base64 of user:password`);
    return { kind: 'basic', username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
  }
  return undefined;
}

/**
 * Answers per registry host, kept for `cacheSeconds`; concurrent asks share one lookup, and a
 * failed lookup is not remembered.
 */
abstract class PerHostCache implements UpstreamCredentialProvider {
  private readonly cache = new Map<string, { creds: Promise<UpstreamCredentials>; until: number }>();

  protected constructor(private readonly cacheSeconds = 300) {}

  protected abstract lookup(host: string): Promise<UpstreamCredentials>;

  credentials(request: CredentialRequest): Promise<UpstreamCredentials> {
    const host = normaliseConfigKey(request.registry);
    const hit = this.cache.get(host);
    if (hit && hit.until > Date.now()) return hit.creds;
    const creds = this.lookup(host);
    this.cache.set(host, { creds, until: Date.now() + this.cacheSeconds * 1000 });
    creds.catch(() => this.cache.delete(host));
    return creds;
  }

  invalidate(request: CredentialRequest): void {
    this.cache.delete(normaliseConfigKey(request.registry));
  }
}

/**
 * Credentials from a Docker client configuration: `credHelpers` for the host, else the
 * `credsStore`, else the `auths` entry, as docker itself looks them up. Helpers run as
 * `docker-credential-<name> get` with the server on stdin and JSON on stdout; their output
 * never reaches an error message.
 */
export class DockerConfigProvider extends PerHostCache {
  private readonly path: string;

  constructor(private readonly opts: DockerConfigProviderOptions = {}) {
    super(opts.cacheSeconds);
    this.path = opts.path ?? join(process.env['DOCKER_CONFIG'] ?? join(homedir(), '.docker'), 'config.json');
  }

  protected async lookup(host: string): Promise<UpstreamCredentials> {
    let config: DockerConfig;
    try {
      config = JSON.parse(await readFile(this.path, 'utf8')) as DockerConfig;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new CredentialError(NAME, code ? `cannot read ${this.path}: ${code}` : `${this.path} is not valid JSON`);
    }
    const helpers = Object.entries(config.credHelpers ?? {}).find(([k]) => normaliseConfigKey(k) === host);
    if (helpers) return (await this.helper(helpers[1], host)) ?? ANONYMOUS_CREDENTIALS;
    if (config.credsStore) {
      const fromStore = await this.helper(config.credsStore, host);
      if (fromStore) return fromStore;
    }
    const entry = Object.entries(config.auths ?? {}).find(([k]) => normaliseConfigKey(k) === host);
    return (entry && fromEntry(entry[1], `auths["${entry[0]}"]`)) ?? ANONYMOUS_CREDENTIALS;
  }

  private helper(name: string, host: string): Promise<UpstreamCredentials | undefined> {
    return runCredentialHelper(name, host, this.opts);
  }
}

/**
 * Runs `docker-credential-<name> get` for a registry host (the helper protocol: the server on
 * stdin, JSON on stdout); undefined when it has no credentials for it. Its output never reaches
 * an error message.
 */
export function runCredentialHelper(name: string, host: string, opts: { helperTimeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<UpstreamCredentials | undefined> {
  if (!/^[A-Za-z0-9._-]+$/.test(name)) return Promise.reject(new CredentialError(NAME, `invalid credential helper name ${JSON.stringify(name)}`));
  const bin = `docker-credential-${name}`;
  const server = host === 'docker.io' ? DOCKER_HUB_KEY : host;
  return new Promise((resolve, reject) => {
    const child = execFile(bin, ['get'], { timeout: opts.helperTimeoutMs ?? 10_000, env: opts.env ?? process.env, maxBuffer: 1 << 20 }, (err, stdout) => {
      if (err) {
        const e = err as NodeJS.ErrnoException & { killed?: boolean; code?: number | string };
        if (e.code === 'ENOENT') return reject(new CredentialError(NAME, `${bin} not found on PATH`));
        if (e.killed) return reject(new CredentialError(NAME, `${bin} did not answer in time`));
        // The helper protocol's "no credentials" answer is a failure with this message.
        if (/credentials not found/i.test(stdout)) return resolve(undefined);
        return reject(new CredentialError(NAME, `${bin} get failed (exit code ${String(e.code)})`));
      }
      let out: { Username?: unknown; Secret?: unknown };
      try {
        out = JSON.parse(stdout) as typeof out;
      } catch {
        return reject(new CredentialError(NAME, `${bin} get printed something that is not JSON`));
      }
      if (typeof out.Username !== 'string' || typeof out.Secret !== 'string' || !out.Secret) return reject(new CredentialError(NAME, `${bin} get answered without Username and Secret`));
      if (out.Username === '<token>') return reject(new CredentialError(NAME, `${bin} returned an identity token, which is not supported`));
      resolve({ kind: 'basic', username: out.Username, password: out.Secret });
    });
    child.stdin?.on('error', () => undefined); // a helper that exits without reading
    child.stdin?.end(server);
  });
}

/** Credentials from one Docker credential helper for every registry, cached for `cacheSeconds`. */
export class CredentialHelperProvider extends PerHostCache {
  constructor(
    private readonly helperName: string,
    private readonly opts: { cacheSeconds?: number; helperTimeoutMs?: number; env?: NodeJS.ProcessEnv } = {},
  ) {
    super(opts.cacheSeconds);
  }

  protected async lookup(host: string): Promise<UpstreamCredentials> {
    return (await runCredentialHelper(this.helperName, host, this.opts)) ?? ANONYMOUS_CREDENTIALS;
  }
}
