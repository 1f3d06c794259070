import { connect as netConnect, type Socket } from 'node:net';

/**
 * Outbound HTTP(S)_PROXY / NO_PROXY (corporate networks reach registries only through one):
 * plain-http upstreams get absolute-form requests sent to the proxy, https upstreams a CONNECT
 * tunnel through which TLS runs end to end (the proxy never sees the registry's credentials).
 */
export interface OutboundProxy {
  /** For http:// upstreams (HTTP_PROXY). */
  readonly http?: URL;
  /** For https:// upstreams (HTTPS_PROXY). */
  readonly https?: URL;
  /** NO_PROXY entries, lower-case: `*`, a host, `.domain` or `domain` (the domain and below), optionally with `:port`. */
  readonly noProxy: readonly string[];
}

/** Reads HTTP_PROXY, HTTPS_PROXY and NO_PROXY (either case, lower-case first, as curl does); undefined when none is set. */
export function outboundProxyFromEnv(env: NodeJS.ProcessEnv): OutboundProxy | undefined {
  const get = (k: string) => env[k.toLowerCase()] ?? env[k.toUpperCase()];
  const parse = (name: string, v: string | undefined): URL | undefined => {
    if (!v) return undefined;
    const u = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(v) ? v : `http://${v}`);
    if (u.protocol !== 'http:') throw new Error(`${name}: only http:// proxies are supported, not ${u.protocol}`);
    return u;
  };
  const http = parse('HTTP_PROXY', get('http_proxy'));
  const https = parse('HTTPS_PROXY', get('https_proxy'));
  if (!http && !https) return undefined;
  const noProxy = (get('no_proxy') ?? '')
    .split(/[\s,]+/)
    .filter(Boolean)
    .map((s) => s.toLowerCase());
  return { ...(http ? { http } : {}), ...(https ? { https } : {}), noProxy };
}

/** The proxy to use for `url`, or undefined to connect directly. */
export function proxyFor(p: OutboundProxy | undefined, url: URL): URL | undefined {
  const proxy = url.protocol === 'https:' ? p?.https : p?.http;
  if (!p || !proxy) return undefined;
  const host = url.hostname.replace(/^\[|\]$/g, '').toLowerCase();
  const port = url.port || (url.protocol === 'https:' ? '443' : '80');
  for (const entry of p.noProxy) {
    if (entry === '*') return undefined;
    const bare = entry.replace(/^\[|\](?=:|$)/g, '');
    const withPort = /:(\d+)$/.exec(bare);
    if (withPort && withPort[1] !== port) continue;
    const name = (withPort ? bare.slice(0, withPort.index) : bare).replace(/^\*?\./, '');
    if (host === name || host.endsWith(`.${name}`)) return undefined;
  }
  return proxy;
}

/** Where to open the TCP connection to a proxy: its host without IPv6 brackets, and its port (80 when the URL has none). */
export function proxyAddress(proxy: URL): { host: string; port: number } {
  return { host: proxy.hostname.replace(/^\[|\]$/g, ''), port: Number(proxy.port || 80) };
}

/** `Proxy-Authorization` for a proxy URL with user info. */
export function proxyAuthorization(proxy: URL): string | undefined {
  if (!proxy.username) return undefined;
  return `Basic ${Buffer.from(`${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`).toString('base64')}`;
}

/** Opens a CONNECT tunnel to `authority` (host:port) through `proxy`; resolves with the socket once the proxy answered 2xx. */
export function tunnel(proxy: URL, authority: string, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = netConnect(proxyAddress(proxy));
    const timer = setTimeout(() => socket.destroy(Object.assign(new Error(`CONNECT through ${proxy.host} timed out`), { name: 'TimeoutError', code: 'ETIMEDOUT' })), timeoutMs);
    let head = '';
    const fail = (e: Error) => {
      clearTimeout(timer);
      socket.destroy();
      reject(e);
    };
    socket.once('error', fail);
    socket.once('close', () => fail(new Error(`proxy ${proxy.host} closed the CONNECT`)));
    socket.once('connect', () => {
      const auth = proxyAuthorization(proxy);
      socket.write(`CONNECT ${authority} HTTP/1.1\r\nhost: ${authority}\r\n${auth ? `proxy-authorization: ${auth}\r\n` : ''}\r\n`, 'latin1');
    });
    const onData = (d: Buffer) => {
      head += d.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) {
        if (head.length > 16 * 1024) fail(new Error(`proxy ${proxy.host} sent an oversized CONNECT answer`));
        return;
      }
      socket.off('data', onData);
      socket.pause();
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1];
      // The tunnel carries TLS next: a proxy that already sent more than its answer is not one to trust.
      if (end + 4 !== head.length) return fail(new Error(`proxy ${proxy.host} sent bytes after its CONNECT answer`));
      if (status === undefined || status[0] !== '2') return fail(new Error(`proxy ${proxy.host} refused CONNECT ${authority} (${status ?? 'no status'})`));
      clearTimeout(timer);
      socket.removeAllListeners('close');
      socket.removeAllListeners('error');
      resolve(socket);
    };
    socket.on('data', onData);
  });
}
