import { createServer, type Server, type Socket } from 'node:net';

/** A raw TCP server from {@link Loopback.raw}. */
export interface RawServer {
  readonly url: string;
  readonly port: number;
  /** Every request received, in order: its head (without the blank line) and the number of the connection it came on (from 1). */
  readonly requests: ReadonlyArray<{ readonly head: string; readonly conn: number }>;
  /** Connections accepted so far. */
  connections(): number;
}

/**
 * Servers that one test file starts on 127.0.0.1, port 0, and closes after each test together
 * with every connection they accepted (a server's close() alone waits for its kept-alive
 * clients, and a test would then hang on its own leftovers). Call `closeAll()` in `afterEach`.
 */
export class Loopback {
  private readonly closers: Array<() => void> = [];

  /** Listens on a free loopback port and returns it; tracks plain and TLS connections. */
  async listen(server: Server): Promise<number> {
    const sockets = new Set<Socket>();
    const track = (s: Socket) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    };
    server.on('connection', track);
    server.on('secureConnection', track);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    this.defer(() => {
      for (const s of sockets) s.destroy();
      server.close();
    });
    return (server.address() as { port: number }).port;
  }

  /** Runs `close` at the next `closeAll()` (clients, transports, anything a test must not leak). */
  defer(close: () => void): void {
    this.closers.push(close);
  }

  closeAll(): void {
    for (const c of this.closers.splice(0)) c();
  }

  /**
   * A TCP server that calls `answer` with each request head it reads (the text before the blank
   * line, latin1) once a body announced by Content-Length has arrived too (it is skipped), and
   * the request's number, so that a test can write exactly the bytes under test: framing that
   * node:http would never produce.
   */
  async raw(answer: (head: string, socket: Socket, n: number) => void): Promise<RawServer> {
    let conns = 0;
    const requests: Array<{ head: string; conn: number }> = [];
    const server = createServer((s) => {
      const conn = ++conns;
      s.on('error', () => undefined);
      let buf = '';
      s.on('data', (d: Buffer) => {
        buf += d.toString('latin1');
        for (let i = buf.indexOf('\r\n\r\n'); i >= 0; i = buf.indexOf('\r\n\r\n')) {
          const head = buf.slice(0, i);
          const len = Number(/\r\ncontent-length: (\d+)/i.exec(head)?.[1] ?? 0);
          if (buf.length < i + 4 + len) break;
          buf = buf.slice(i + 4 + len);
          requests.push({ head, conn });
          answer(head, s, requests.length);
        }
      });
    });
    const port = await this.listen(server);
    return { url: `http://127.0.0.1:${port}`, port, requests, connections: () => conns };
  }
}
