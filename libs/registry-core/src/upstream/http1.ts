import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import type { ResponseBody } from './body.js';
import type { CancelSignal } from './cancel.js';
import { Connection } from './connection.js';
import { NoResponseError } from './errors.js';
import { proxyFor, tunnel, type OutboundProxy } from './outbound-proxy.js';
export { releaseChunk } from './buffer-pool.js';

export type HttpMethod = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/** A request on an HTTP/1.1 connection. */
export interface Http1Request {
  readonly url: URL;
  readonly method: HttpMethod;
  readonly headers: Readonly<Record<string, string>>;
  /**
   * A request body: a Buffer (sent with its Content-Length), or a stream, sent with the
   * `content-length` given in `headers` or else chunked. A stream can be sent only once, so a
   * request that carries one always gets a fresh connection and is never retried.
   */
  readonly body?: Buffer | Readable | undefined;
  /** An AbortSignal, or a cheaper {@link CancelSignal}. */
  readonly signal?: CancelSignal | undefined;
  /**
   * Connect to this IP address instead of resolving the URL's host again: the redirect layer
   * resolves and vets a destination once and the connection goes exactly there (no second DNS
   * answer in between). TLS still verifies the certificate against the URL's host.
   */
  readonly connectTo?: string | undefined;
  readonly headersTimeoutMs: number;
  readonly bodyIdleTimeoutMs: number;
}

export interface Http1Response {
  readonly statusCode: number;
  /** Lower-case names; repeated headers become arrays. */
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: ResponseBody;
}

export interface Http1TransportOptions {
  readonly connectTimeoutMs?: number;
  /** How long an idle keep-alive connection is kept (capped by the server's Keep-Alive hint). */
  readonly idleTimeoutMs?: number;
  /**
   * Idle connections kept per origin (256, as Node's http.Agent keeps). Fewer than the clients
   * in flight means churn: under 50 concurrent HEADs a limit of 32 closed and reopened about
   * 16 upstream connections a second.
   */
  readonly maxIdlePerOrigin?: number;
  /** Extra CA certificates (PEM) for TLS upstreams; the system's are used otherwise. */
  readonly ca?: string | Buffer | ReadonlyArray<string | Buffer> | undefined;
  /** Outbound proxies (HTTP_PROXY, HTTPS_PROXY, NO_PROXY; see outbound-proxy.ts). */
  readonly proxy?: OutboundProxy | undefined;
}

/**
 * A small HTTP/1.1 client with a keep-alive pool per origin. Unlike undici it
 * keeps connections after HEAD (the request docker sends first for every image), and it reads
 * large bodies with few, large, zero-copy reads.
 */
export class Http1Transport {
  private readonly idle = new Map<string, Connection[]>();
  private readonly live = new Set<Connection>();
  private closed = false;

  constructor(private readonly opts: Http1TransportOptions = {}) {}

  /**
   * Sends one request, once: retrying is the caller's decision (see retry.ts). A request that
   * must not be sent twice (anything but GET and HEAD) and a streamed body always get a fresh
   * connection, where a reset cannot be the race with a server closing an idle one.
   */
  async request(req: Http1Request): Promise<Http1Response> {
    if (this.closed) throw new Error('transport closed');
    const key = poolKey(req);
    const fresh = req.body !== undefined && !Buffer.isBuffer(req.body) ? true : req.method !== 'GET' && req.method !== 'HEAD';
    const conn = (fresh ? undefined : this.take(key)) ?? (await this.open(req.url, key, req.connectTo));
    try {
      return await conn.send(req);
    } catch (err) {
      // A kept-alive connection found closed: the others kept as long are most likely closed
      // too (an upstream restart); drop them rather than let the next requests find out one by one.
      if (err instanceof NoResponseError && err.reusedConnection) this.drop(key);
      throw err;
    }
  }

  private drop(key: string): void {
    for (const c of this.idle.get(key) ?? []) c.socket.destroy();
    this.idle.delete(key);
  }

  private take(key: string): Connection | undefined {
    const list = this.idle.get(key);
    while (list && list.length > 0) {
      const c = list.pop() as Connection;
      // Regression: the idle timer used to survive the take, and cut transfers that were still
      // running when it fired. It still runs (refreshing it on the next release is cheaper than
      // a new one), but acts only on a pooled connection.
      c.pooled = false;
      if (!c.socket.destroyed) return c;
    }
    return undefined;
  }

  private async open(url: URL, key: string, connectTo: string | undefined): Promise<Connection> {
    const proxy = proxyFor(this.opts.proxy, url);
    const timeout = this.opts.connectTimeoutMs ?? 10_000;
    let via: { proxy: URL } | { tunnel: Socket } | undefined;
    if (proxy && url.protocol === 'https:') {
      // CONNECT to the vetted address when there is one, so the proxy cannot resolve anew.
      const host = connectTo ?? url.hostname.replace(/^\[|\]$/g, '');
      via = { tunnel: await tunnel(proxy, `${host.includes(':') ? `[${host}]` : host}:${url.port || 443}`, timeout) };
    } else if (proxy) via = { proxy };
    return this.connect(url, key, connectTo, via);
  }

  private connect(url: URL, key: string, connectTo: string | undefined, via: { proxy: URL } | { tunnel: Socket } | undefined): Promise<Connection> {
    return new Promise((resolve, reject) => {
      const conn = new Connection(url, connectTo, this.opts.connectTimeoutMs ?? 10_000, this.opts.ca, reject, via);
      this.live.add(conn);
      conn.socket.once('close', () => {
        clearTimeout(conn.idleTimer);
        this.live.delete(conn);
        const list = this.idle.get(key);
        const i = list?.indexOf(conn) ?? -1;
        if (list && i >= 0) list.splice(i, 1);
      });
      conn.onRelease = (reusable) => {
        if (!reusable || this.closed) {
          conn.socket.destroy();
          return;
        }
        const list = this.idle.get(key) ?? [];
        if (list.length >= (this.opts.maxIdlePerOrigin ?? 256)) {
          conn.socket.destroy();
          return;
        }
        const keep = Math.min(this.opts.idleTimeoutMs ?? 30_000, conn.keepAliveHintMs !== undefined ? Math.max(0, conn.keepAliveHintMs - 1000) : Infinity);
        conn.pooled = true;
        if (conn.idleTimer !== undefined && conn.idleMs === keep) conn.idleTimer.refresh();
        else {
          clearTimeout(conn.idleTimer);
          conn.idleMs = keep;
          conn.idleTimer = setTimeout(() => {
            if (conn.pooled) conn.socket.destroy();
          }, keep);
          conn.idleTimer.unref();
        }
        // An idle socket reads, so a server's close is noticed, and so is any byte nobody asked
        // for: the connection then closes (connection.ts) instead of answering the next request.
        conn.socket.resume();
        list.push(conn);
        this.idle.set(key, list);
      };
      conn.socket.once(url.protocol === 'https:' ? 'secureConnect' : 'connect', () => resolve(conn));
    });
  }

  /** Closes every connection. */
  async close(): Promise<void> {
    this.closed = true;
    for (const c of this.live) c.socket.destroy();
    this.idle.clear();
  }
}

/** Connections are shared per origin, and per vetted address when the caller chose one. */
function poolKey(req: Http1Request): string {
  return req.connectTo === undefined ? req.url.origin : `${req.url.origin} ${req.connectTo}`;
}
