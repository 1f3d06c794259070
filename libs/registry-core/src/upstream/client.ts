import { parseChallenges, type Challenge } from '../challenge.js';
import type { CancelSignal } from './cancel.js';
import { CredentialError, credentialKey, type UpstreamCredentialProvider, type UpstreamCredentials } from '../credentials.js';
import type { ResponseBody } from './body.js';
import { vetRedirect, type Lookup } from './destination.js';
import { UpstreamUnavailableError } from './errors.js';
import type { OutboundProxy } from './outbound-proxy.js';
import type { Readable } from 'node:stream';
import { Http1Transport, type HttpMethod } from './http1.js';
import { DEFAULT_RETRY, classify, withRetry, type RetryPolicy } from './retry.js';
import { TokenCache, type CachedToken } from './token-cache.js';

/** Options of one upstream registry. */
export interface UpstreamClientOptions {
  readonly name: string;
  /** Base URL of the registry, e.g. `https://registry-1.docker.io`. */
  readonly url: string;
  readonly credentials: UpstreamCredentialProvider;
  /** Follow blob redirects here (true) or hand them to the client with an absolute Location (false). */
  readonly followRedirects: boolean;
  /**
   * Hosts a followed redirect may reach although they resolve to loopback, private, link-local
   * or other non-public addresses (see destination.ts); by default none.
   */
  readonly redirectHosts?: readonly string[];
  /** Name resolution for redirect targets (tests); the system resolver by default. */
  readonly lookup?: Lookup;
  /** Origins besides the registry's own that may receive credentials as token realms. */
  readonly tokenRealms?: readonly string[];
  readonly timeouts?: { readonly connectMs?: number; readonly headersMs?: number; readonly bodyIdleMs?: number };
  readonly retry?: RetryPolicy;
  readonly userAgent?: string;
  /** A transport to share between upstreams; by default each client has its own keep-alive pool. */
  readonly transport?: Http1Transport;
  /** Extra CA certificates (PEM) for an HTTPS upstream, when the client makes its own transport. */
  readonly ca?: string | Buffer | undefined;
  /** Outbound proxies (HTTP(S)_PROXY, NO_PROXY), when the client makes its own transport. */
  readonly outboundProxy?: OutboundProxy | undefined;
}

/** A request to the upstream; `path` starts with `/v2/` and may carry a query. */
export interface UpstreamRequest {
  readonly method: HttpMethod;
  readonly path: string;
  readonly headers?: Readonly<Record<string, string>>;
  /**
   * A body: a Buffer can be resent (retries, a second challenge round); a stream is sent once,
   * so the client learns the upstream's challenge first and never retries it.
   */
  readonly body?: Buffer | Readable | undefined;
  /** Token scopes separated by spaces, e.g. `repository:library/alpine:pull`. */
  readonly scope?: string;
  /** An AbortSignal, or a cheaper {@link CancelSignal} (./cancel.ts). */
  readonly signal?: CancelSignal | undefined;
}

/** The upstream's answer; the caller must consume or destroy `body`. */
export interface UpstreamResponse {
  readonly statusCode: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: ResponseBody;
  /** Where the response finally came from (after followed redirects). */
  readonly url: URL;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 5;

type AuthMode = { scheme: 'none' } | { scheme: 'basic' } | { scheme: 'bearer'; realm: URL; service: string | undefined };

function header(h: UpstreamResponse['headers'], name: string): string | undefined {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
}

/**
 * A client for one upstream registry: answers the upstream's own challenge (anonymous, Basic or
 * Bearer), caches bearer tokens per scope and credential, retries idempotent requests, and
 * follows or passes on redirects without ever sending credentials to another host.
 *
 * Worst case per client request (docs/configuration.md, "Retries and their bounds"), with
 * R = attempts + 1 (withRetry: the attempts, plus one re-send after a stale kept-alive connection):
 * - GET/HEAD: 2 credential rounds (only for providers that can refresh, ECR/GCP/docker-config)
 *   x 2 challenge rounds x (token fetch R + 6 hops (1 + MAX_REDIRECTS) x R) = 28R upstream
 *   requests (112 with attempts: 3; 14R = 56 without a refreshing provider).
 * - Any other method with a Buffer body (manifest PUT, POST, DELETE): sent once per round, and
 *   sent again only after the upstream refused it unprocessed (401, or 401/403 with refreshed
 *   credentials): at most 4 times, never after a timeout, reset or 5xx.
 * - A streamed body (blob upload): sent exactly once (after a `GET /v2/` that learns the challenge).
 * - Time to response headers: each upstream request is bounded by connectMs + headersMs, and a
 *   timeout ends the client request at once (never retried), so the worst case is the sum over
 *   the requests above of connectMs + headersMs, plus (attempts - 1) x maxDelayMs of backoff per
 *   withRetry call, plus the system resolver's own timeout per followed redirect.
 */
export class UpstreamClient {
  readonly name: string;
  readonly origin: string;
  private readonly host: string;
  private readonly transport: Http1Transport;
  private readonly tokens = new TokenCache();
  private readonly realms: ReadonlySet<string>;
  private readonly redirectHosts: ReadonlySet<string>;
  private readonly retry: RetryPolicy;
  private readonly headersMs: number;
  private readonly bodyIdleMs: number;
  /** Learnt from the upstream's first challenge; one upstream, one scheme. */
  private mode: AuthMode | undefined;

  constructor(private readonly opts: UpstreamClientOptions) {
    const base = new URL(opts.url);
    this.name = opts.name;
    this.origin = base.origin;
    this.host = base.host;
    this.realms = new Set([this.origin, ...(opts.tokenRealms ?? []).map((r) => new URL(r).origin)]);
    this.redirectHosts = new Set((opts.redirectHosts ?? []).map((h) => h.toLowerCase().replace(/^\[|\]$/g, '')));
    this.retry = opts.retry ?? DEFAULT_RETRY;
    this.headersMs = opts.timeouts?.headersMs ?? 30_000;
    this.bodyIdleMs = opts.timeouts?.bodyIdleMs ?? 60_000;
    this.transport = opts.transport ?? new Http1Transport({ connectTimeoutMs: opts.timeouts?.connectMs ?? 10_000, ca: opts.ca, proxy: opts.outboundProxy });
  }

  /** Closes the client's own connections. */
  async close(): Promise<void> {
    if (!this.opts.transport) await this.transport.close();
  }

  /** Sends a request with whatever authorization the upstream asks for. */
  async request(req: UpstreamRequest): Promise<UpstreamResponse> {
    const streamed = req.body !== undefined && !Buffer.isBuffer(req.body);
    if (streamed && this.mode === undefined) await this.learnMode(req.signal);
    const provider = this.opts.credentials;
    const creds = await provider.credentials({ registry: this.host });
    if (!provider.invalidate || streamed) return this.attempt(req, creds, streamed);
    // Credentials that expire on the upstream's schedule (ECR, GCP tokens) are dropped when the
    // upstream or its token realm refuses them, and the request goes once more if that gave
    // different ones.
    const fresher = async (): Promise<UpstreamCredentials | undefined> => {
      provider.invalidate?.({ registry: this.host });
      try {
        const fresh = await provider.credentials({ registry: this.host });
        return credentialKey(fresh) === credentialKey(creds) ? undefined : fresh;
      } catch {
        return undefined; // the refusal is the better answer to report
      }
    };
    let res: UpstreamResponse;
    try {
      res = await this.attempt(req, creds, streamed);
    } catch (err) {
      const fresh = err instanceof CredentialError && err.refused ? await fresher() : undefined;
      if (!fresh) throw err;
      return this.attempt(req, fresh, streamed);
    }
    if (res.statusCode === 401 || res.statusCode === 403) {
      const fresh = await fresher();
      if (!fresh) return res;
      await res.body.dump();
      return this.attempt(req, fresh, streamed);
    }
    return res;
  }

  private async attempt(req: UpstreamRequest, creds: UpstreamCredentials, streamed: boolean): Promise<UpstreamResponse> {
    const key = `${req.scope ?? ''}\u0000${credentialKey(creds)}`;
    for (let round = 0; ; round++) {
      const authorization = await this.authorization(creds, key, req.scope, req.signal);
      const res = await this.send(req, authorization, streamed);
      if (res.statusCode !== 401 || round > 0 || streamed) return res;
      // A 401: learn (or re-learn) the challenge, forget the token, and try once more when that
      // could change anything: a (new) bearer token, or Basic credentials not sent yet.
      this.mode = this.modeFrom(res.headers);
      this.tokens.delete(key);
      const worthRetry = this.mode.scheme === 'bearer' || (this.mode.scheme === 'basic' && creds.kind === 'basic' && authorization === undefined);
      if (!worthRetry) return res;
      await res.body.dump();
    }
  }

  /** Asks `/v2/` which authorization the upstream wants, as clients do before a push. */
  private async learnMode(signal?: CancelSignal): Promise<void> {
    const res = await this.send({ method: 'GET', path: '/v2/', signal }, undefined, false);
    await res.body.dump();
    this.mode = res.statusCode === 401 ? this.modeFrom(res.headers) : { scheme: 'none' };
  }

  private modeFrom(headers: UpstreamResponse['headers']): AuthMode {
    const raw = headers['www-authenticate'];
    const challenges: Challenge[] = (Array.isArray(raw) ? raw : raw ? [raw] : []).flatMap(parseChallenges);
    const bearer = challenges.find((c) => c.scheme === 'bearer');
    if (bearer?.params['realm']) {
      try {
        const realm = new URL(bearer.params['realm']);
        if (realm.protocol === 'https:' || realm.protocol === 'http:') return { scheme: 'bearer', realm, service: bearer.params['service'] };
      } catch {
        /* an unusable realm: fall through */
      }
    }
    if (challenges.some((c) => c.scheme === 'basic')) return { scheme: 'basic' };
    return { scheme: 'none' };
  }

  private async authorization(creds: UpstreamCredentials, key: string, scope: string | undefined, signal?: CancelSignal): Promise<string | undefined> {
    if (creds.kind === 'bearer') return `Bearer ${creds.token}`;
    const mode = this.mode;
    if (!mode || mode.scheme === 'none') return undefined;
    if (mode.scheme === 'basic') return creds.kind === 'basic' ? basic(creds.username, creds.password) : undefined;
    const token = await this.tokens.get(key, () => this.fetchToken(mode, creds, scope, signal));
    return `Bearer ${token}`;
  }

  private async fetchToken(mode: Extract<AuthMode, { scheme: 'bearer' }>, creds: UpstreamCredentials, scope: string | undefined, signal?: CancelSignal): Promise<CachedToken> {
    const url = new URL(mode.realm);
    if (mode.service !== undefined) url.searchParams.set('service', mode.service);
    for (const s of scope?.split(' ') ?? []) if (s) url.searchParams.append('scope', s);
    const headers: Record<string, string> = { 'user-agent': this.opts.userAgent ?? 'registry-proxy' };
    if (creds.kind === 'basic') {
      // Credentials go only to the registry itself and the token realms configured for it.
      if (!this.realms.has(url.origin)) {
        throw new CredentialError(this.name, `token realm ${url.origin} is not the upstream's origin; list it in tokenRealms to send credentials there`);
      }
      headers['authorization'] = basic(creds.username, creds.password);
    }
    const started = Date.now();
    const res = await withRetry(
      this.name,
      this.retry,
      'GET',
      signal,
      () => this.transport.request({ url, method: 'GET', headers, headersTimeoutMs: this.headersMs, bodyIdleTimeoutMs: this.bodyIdleMs, signal }),
      (r) => r.body.dump(),
    );
    let text: string;
    try {
      text = await res.body.text();
    } catch (err) {
      throw classify(this.name, err);
    }
    if (res.statusCode === 401 || res.statusCode === 403) {
      throw new CredentialError(this.name, `token realm refused the credentials (HTTP ${res.statusCode})`, { refused: true });
    }
    if (res.statusCode !== 200) throw new UpstreamUnavailableError(this.name, 'status', `token realm answered ${res.statusCode}`);
    let body: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      body = JSON.parse(text) as typeof body;
    } catch (cause) {
      throw new UpstreamUnavailableError(this.name, 'protocol', 'token realm sent invalid JSON', { cause });
    }
    const token = typeof body.token === 'string' && body.token ? body.token : body.access_token;
    if (typeof token !== 'string' || !token) throw new UpstreamUnavailableError(this.name, 'protocol', 'token realm sent no token');
    const expiresIn = typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : 60;
    return { token, refreshAt: TokenCache.refreshAt(started, expiresIn) };
  }

  private async send(req: UpstreamRequest, authorization: string | undefined, streamed: boolean): Promise<UpstreamResponse> {
    let url = new URL(req.path, this.origin);
    let method: HttpMethod = req.method;
    // Only reads follow redirects; anything else hands the (absolute) Location to the caller.
    const follow = this.opts.followRedirects && (method === 'GET' || method === 'HEAD');
    let withAuth = authorization !== undefined;
    let connectTo: string | undefined;
    for (let hops = 0; ; hops++) {
      const headers: Record<string, string> = { 'user-agent': this.opts.userAgent ?? 'registry-proxy', ...req.headers };
      if (withAuth) headers['authorization'] = authorization as string;
      const target = url;
      const m = method;
      const to = connectTo;
      // A streamed body cannot be sent twice, whatever the method.
      const res = await withRetry(
        this.name,
        this.retry,
        streamed ? 'stream' : m,
        req.signal,
        () =>
          this.transport.request({
            url: target,
            method: m,
            connectTo: to,
            headers,
            headersTimeoutMs: this.headersMs,
            bodyIdleTimeoutMs: this.bodyIdleMs,
            // The body goes with the first hop only; a followed redirect never carries it again.
            body: hops === 0 ? req.body : undefined,
            signal: req.signal,
          }),
        (r) => r.body.dump(),
      );
      const location = header(res.headers, 'location');
      if (!REDIRECTS.has(res.statusCode) || location === undefined) return { ...res, url: target };
      let next: URL;
      try {
        next = new URL(location, target);
      } catch {
        await res.body.dump();
        throw new UpstreamUnavailableError(this.name, 'protocol', 'redirect with an invalid Location');
      }
      if (!follow) {
        res.headers['location'] = next.href; // relative Locations (Artifact Registry) made absolute
        return { ...res, url: target };
      }
      await res.body.dump();
      if (hops >= MAX_REDIRECTS) throw new UpstreamUnavailableError(this.name, 'protocol', 'too many redirects');
      // Never forward the upstream's Authorization to another host (blob storage, CDN), and go
      // only where destination.ts allows; the configured upstream itself is the operator's choice.
      if (next.origin !== this.origin) {
        withAuth = false;
        connectTo = await vetRedirect(this.name, target, next, this.redirectHosts, this.opts.lookup);
      } else connectTo = undefined;
      if (res.statusCode === 303) method = 'GET';
      url = next;
    }
  }
}

function basic(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
}
