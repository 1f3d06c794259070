import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';

/** What a request's log line and metrics say about it beyond method, path and status. */
export interface RequestNotes {
  route?: string;
  subject?: string | undefined;
  repository?: string;
  upstream?: string;
}

/** Express's compiled `trust proxy` setting: whether the hop at `address` (index `i` from the socket) is trusted. */
export type TrustFn = (address: string | undefined, i: number) => boolean;

/**
 * One /v2 request, as its handlers see it: Node's own request and response, and what Express
 * would work out from them (the path below /v2, the query, the host and scheme the client
 * used), computed the same way from the same `trust proxy` function, so a token the Express
 * token route bound to a host is checked against the same host here. The /v2 routes run
 * outside Express (see ./app.ts for why); this is all they need of it.
 */
export class Call {
  /** Per-request notes for the log line and metrics (./request-log.ts). */
  readonly notes: RequestNotes = {};
  private hostMemo: string | undefined | null = null;

  constructor(
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    /** The path below `/v2`: '' or '/...', still percent-encoded. */
    readonly path: string,
    /** The query string without its '?', '' when there is none. */
    readonly search: string,
    private readonly trust: TrustFn,
  ) {}

  get method(): string {
    return this.req.method ?? 'GET';
  }

  /** Express's `req.host`: X-Forwarded-Host (its first value) from a trusted proxy, else Host. */
  get host(): string | undefined {
    if (this.hostMemo !== null) return this.hostMemo;
    // Node joins repeated X-Forwarded-Host lines with ", " (a string), as Express reads it.
    const fwd = this.req.headers['x-forwarded-host'];
    let val = typeof fwd === 'string' ? fwd : undefined;
    if (!val || !this.trust(this.req.socket.remoteAddress, 0)) val = this.req.headers.host;
    else if (val.includes(',')) val = val.slice(0, val.indexOf(',')).trimEnd();
    return (this.hostMemo = val || undefined);
  }

  /**
   * Express's `req.ip` (proxy-addr): the socket's peer, then the X-Forwarded-For entries from
   * right to left for as long as each hop so far is trusted; the first untrusted one is the client.
   */
  get ip(): string | undefined {
    const addrs = [this.req.socket.remoteAddress];
    const xff = this.req.headers['x-forwarded-for'];
    if (typeof xff === 'string') forwardedFor(xff, addrs);
    for (let i = 0; i < addrs.length - 1; i++) if (!this.trust(addrs[i], i)) return addrs[i];
    return addrs[addrs.length - 1];
  }

  /** Express's `req.protocol`: X-Forwarded-Proto (first value) from a trusted proxy, else the socket's. */
  get protocol(): string {
    const own = (this.req.socket as Partial<TLSSocket>).encrypted ? 'https' : 'http';
    if (!this.trust(this.req.socket.remoteAddress, 0)) return own;
    const header = this.req.headers['x-forwarded-proto'];
    const v = typeof header === 'string' && header !== '' ? header : own;
    const i = v.indexOf(',');
    return (i < 0 ? v : v.slice(0, i)).trim();
  }
}

/** Appends X-Forwarded-For's addresses, last first, as the `forwarded` package reads them (spaces trimmed, empty entries skipped). */
function forwardedFor(header: string, out: Array<string | undefined>): void {
  let end = header.length;
  let start = end;
  for (let i = header.length - 1; i >= 0; i--) {
    const c = header.charCodeAt(i);
    if (c === 0x20) {
      if (start === end) start = end = i;
    } else if (c === 0x2c) {
      if (start !== end) out.push(header.slice(start, end));
      start = end = i;
    } else start = i;
  }
  if (start !== end) out.push(header.slice(start, end));
}
