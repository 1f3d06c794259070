import { connect } from 'node:net';

/**
 * Whether something serves gRPC on a unix socket: after the HTTP/2 client preface, a gRPC
 * server's first frame is SETTINGS (RFC 9113 3.4). A socket file alone proves nothing: one left
 * behind by a dead image service refuses the connection, and kubelet pointed at it exits
 * ("validate service connection") and is restarted again and again.
 */
export function isServed(socketPath: string, timeoutMs = 3000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(socketPath);
    const done = (ok: boolean) => {
      clearTimeout(t);
      s.destroy();
      resolve(ok);
    };
    const t = setTimeout(() => done(false), timeoutMs);
    s.once('error', () => done(false));
    s.once('connect', () => s.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])])));
    let got = Buffer.alloc(0);
    s.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d]);
      if (got.length >= 9) done(got[3] === 4);
    });
    s.once('end', () => done(false));
  });
}

/** Polls until the socket is served or the time is up. */
export async function waitServed(socketPath: string, timeoutMs: number, intervalMs = 500): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    if (await isServed(socketPath, Math.max(1, Math.min(3000, until - Date.now())))) return true;
    if (Date.now() >= until) return false;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
