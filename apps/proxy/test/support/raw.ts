import { connect, type Socket } from 'node:net';

/** What came back on a raw connection: the bytes, and whether (and how) the proxy closed it. */
export interface RawReply {
  readonly text: string;
  /** The status of each response on the connection, in order (an interim 100 counts). */
  readonly statuses: number[];
  readonly closed: boolean;
  readonly error?: string;
}

/** Splits a raw HTTP/1.1 byte stream into response statuses (heads only; bodies are skipped by length). */
export function statusesOf(text: string): number[] {
  return [...text.matchAll(/(?:^|\r\n)HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));
}

/**
 * Opens a TCP connection, lets `drive` write whatever it wants (it may await replies), and
 * collects everything the server sends until it closes or `idleMs` passes without a byte.
 */
export async function raw(port: number, drive: (sock: Socket, seen: () => string) => Promise<void> | void, idleMs = 1500): Promise<RawReply> {
  const sock = connect(port, '127.0.0.1');
  const chunks: Buffer[] = [];
  let closed = false;
  let error: string | undefined;
  let timer: NodeJS.Timeout | undefined;
  const done = new Promise<void>((resolve) => {
    const idle = () => {
      clearTimeout(timer);
      timer = setTimeout(resolve, idleMs);
    };
    sock.on('data', (c: Buffer) => {
      chunks.push(c);
      idle();
    });
    sock.on('error', (e: NodeJS.ErrnoException) => {
      error = e.code ?? e.message;
    });
    sock.on('close', () => {
      closed = true;
      clearTimeout(timer);
      resolve();
    });
    idle();
  });
  await new Promise<void>((r, j) => {
    sock.once('connect', r);
    sock.once('error', j);
  });
  const seen = () => Buffer.concat(chunks).toString('latin1');
  try {
    await drive(sock, seen);
  } catch (e) {
    error ??= (e as NodeJS.ErrnoException).code ?? String(e);
  }
  await done;
  sock.destroy();
  const text = Buffer.concat(chunks).toString('latin1');
  return { text, statuses: statusesOf(text), closed, ...(error !== undefined ? { error } : {}) };
}

/** Writes, resolving when the kernel took the bytes (or rejecting when the peer is gone). */
export function write(sock: Socket, data: string | Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    if (sock.destroyed) return reject(Object.assign(new Error('socket closed'), { code: 'ECONNRESET' }));
    sock.write(data, (err) => (err ? reject(err) : resolve()));
  });
}

/** The JSON body of the first response in a raw reply (Content-Length framed). */
export function bodyOf(text: string): unknown {
  const at = text.indexOf('\r\n\r\n');
  const len = /\r\ncontent-length: (\d+)/i.exec(text.slice(0, at));
  const body = text.slice(at + 4, len ? at + 4 + Number(len[1]) : undefined);
  return JSON.parse(body);
}
