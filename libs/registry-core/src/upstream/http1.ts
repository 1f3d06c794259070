import type { Readable } from 'node:stream';
import type { ResponseBody } from './body.js';
import { Connection } from './connection.js';
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
  readonly body?: Buffer | Readable;
  readonly signal?: AbortSignal;
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
  readonly ca?: string | Buffer | ReadonlyArray<string | Buffer>;
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

  async request(req: Http1Request): Promise<Http1Response> {
    if (this.closed) throw new Error('transport closed');
    for (let attempt = 0; ; attempt++) {
      const streamed = req.body !== undefined && !Buffer.isBuffer(req.body);
      const conn = (streamed ? undefined : this.take(req.url.origin)) ?? (await this.open(req.url));
      try {
        return await conn.send(req);
      } catch (err) {
        // A kept-alive connection the server had closed fails before any byte comes back:
        // that request never reached the server, so it goes once more on a new connection.
        if (conn.reused && !conn.gotBytes && attempt === 0 && !streamed && !req.signal?.aborted && !(err instanceof TypeError)) continue;
        throw err;
      }
    }
  }

  private take(origin: string): Connection | undefined {
    const list = this.idle.get(origin);
    while (list && list.length > 0) {
      const c = list.pop() as Connection;
      // Regression: the idle timer used to survive the take, and cut transfers that were still
      // running when it fired.
      clearTimeout(c.idleTimer);
      if (!c.socket.destroyed) return c;
    }
    return undefined;
  }

  private open(url: URL): Promise<Connection> {
    return new Promise((resolve, reject) => {
      const conn = new Connection(url, this.opts.connectTimeoutMs ?? 10_000, this.opts.ca, reject);
      this.live.add(conn);
      conn.socket.once('close', () => {
        clearTimeout(conn.idleTimer);
        this.live.delete(conn);
        const list = this.idle.get(url.origin);
        const i = list?.indexOf(conn) ?? -1;
        if (list && i >= 0) list.splice(i, 1);
      });
      conn.onRelease = (reusable) => {
        const list = this.idle.get(url.origin) ?? [];
        if (!reusable || this.closed || list.length >= (this.opts.maxIdlePerOrigin ?? 256)) {
          conn.socket.destroy();
          return;
        }
        const keep = Math.min(this.opts.idleTimeoutMs ?? 30_000, conn.keepAliveHintMs !== undefined ? Math.max(0, conn.keepAliveHintMs - 1000) : Infinity);
        clearTimeout(conn.idleTimer);
        conn.idleTimer = setTimeout(() => conn.socket.destroy(), keep);
        conn.idleTimer.unref();
        conn.socket.resume(); // an idle socket reads, so a server's close is noticed
        list.push(conn);
        this.idle.set(url.origin, list);
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
