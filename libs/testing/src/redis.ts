import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, freezeProcess } from './proc.js';

/** A real redis-server (Debian's) on a temporary unix socket and a loopback port, no persistence. */
export interface TestRedis {
  /** `unix:///.../r.sock`, the form the proxy's `state.redis.url` takes. */
  readonly url: string;
  /** `redis://127.0.0.1:<port>`. */
  readonly tcpUrl: string;
  readonly socket: string;
  readonly pid: number | undefined;
  /** SIGTERM and wait; `start` brings it back on the same socket and port (empty). */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** SIGSTOP / SIGCONT: a Redis that accepts connections and never answers. */
  freeze(): void;
  thaw(): void;
  /** Stops it and removes its directory. */
  destroy(): Promise<void>;
}

/** Sends PING over the socket; resolves true on +PONG (or -NOAUTH: up, and wants the password). */
function ping(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = connect(socket);
    const done = (ok: boolean) => {
      c.destroy();
      resolve(ok);
    };
    c.setTimeout(500, () => done(false));
    c.once('error', () => done(false));
    c.once('connect', () => c.write('PING\r\n'));
    c.once('data', (d) => done(/^(\+PONG|-NOAUTH)/.test(d.toString())));
  });
}

/** `password`: clients must AUTH with it (`redis://:password@...`). */
export async function startRedis(opts: { password?: string } = {}): Promise<TestRedis> {
  const dir = mkdtempSync(join(tmpdir(), 'rp-redis-'));
  const socket = join(dir, 'r.sock');
  const port = await freePort();
  let child: ChildProcess | undefined;
  const start = async () => {
    child = spawn(
      'redis-server',
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--unixsocket',
        socket,
        '--unixsocketperm',
        '700',
        '--dir',
        dir,
        '--save',
        '',
        '--appendonly',
        'no',
        ...(opts.password ? ['--requirepass', opts.password] : []),
      ],
      { stdio: 'ignore' },
    );
    child.once('error', () => undefined);
    for (let i = 0; i < 200; i++) {
      if (await ping(socket)) return;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error('redis-server did not start (is it installed? tools/install-deps.sh)');
  };
  const stop = async () => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    await new Promise<void>((r) => {
      c.once('exit', () => r());
      c.kill('SIGCONT');
      c.kill('SIGTERM');
    });
  };
  await start();
  return {
    url: `unix://${socket}`,
    tcpUrl: `redis://127.0.0.1:${port}`,
    socket,
    get pid() {
      return child?.pid;
    },
    start,
    stop,
    freeze: () => void (child?.pid && freezeProcess(child.pid)),
    thaw: () => void child?.kill('SIGCONT'),
    async destroy() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
