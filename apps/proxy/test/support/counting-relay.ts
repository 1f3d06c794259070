import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A counting relay for the cache replica suites: a plain HTTP pass-through in front of a real
 * docker-registry (not a stand-in: every byte comes from the registry) that counts `METHOD
 * path` of the answers `counted` picks, and paces blob bodies (64 KiB every 15 ms) so that
 * concurrent pulls overlap a fill. With `down` set, it answers 503 as a failing upstream would.
 */
export interface CountingRelay {
  readonly url: string;
  readonly counts: Map<string, number>;
  /** While true, every request gets 503 UNAVAILABLE without reaching the registry. */
  down: boolean;
  close(): Promise<void>;
}

export async function startCountingRelay(target: string, counted: (status: number) => boolean): Promise<CountingRelay> {
  const t = new URL(target);
  const counts = new Map<string, number>();
  const state = { down: false };
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0] as string;
    if (state.down) {
      req.resume();
      res.writeHead(503, { 'content-type': 'application/json' }).end('{"errors":[{"code":"UNAVAILABLE","message":"upstream down (test)"}]}');
      return;
    }
    const up = request({ host: t.hostname, port: t.port, method: req.method, path: req.url, headers: req.headers }, async (ur) => {
      if (counted(ur.statusCode ?? 0)) counts.set(`${req.method} ${path}`, (counts.get(`${req.method} ${path}`) ?? 0) + 1);
      res.writeHead(ur.statusCode ?? 502, ur.headers);
      const pace = /\/blobs\/sha256:/.test(path) && req.method === 'GET';
      for await (const chunk of ur as AsyncIterable<Buffer>) {
        for (let i = 0; i < chunk.length; i += 64 << 10) {
          if (!res.write(chunk.subarray(i, i + (64 << 10)))) await new Promise((r) => res.once('drain', r));
          if (pace) await new Promise((r) => setTimeout(r, 15));
        }
      }
      res.end();
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    counts,
    get down() {
      return state.down;
    },
    set down(v: boolean) {
      state.down = v;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/**
 * A plain pass-through in front of a real docker-registry that counts the requests in flight
 * (`now`, the highest `max` since it was last reset) and the PUTs: for the tests that check the
 * proxy goes to a store a few requests at a time, not all at once.
 */
export interface FlightRelay {
  readonly url: string;
  readonly flight: { now: number; max: number; puts: number };
  close(): Promise<void>;
}

export async function startFlightRelay(target: string): Promise<FlightRelay> {
  const t = new URL(target);
  const flight = { now: 0, max: 0, puts: 0 };
  const server = createServer((req, res) => {
    flight.now++;
    flight.max = Math.max(flight.max, flight.now);
    if (req.method === 'PUT') flight.puts++;
    res.on('close', () => flight.now--);
    const up = request({ host: t.hostname, port: t.port, method: req.method, path: req.url, headers: req.headers }, (ur) => {
      res.writeHead(ur.statusCode ?? 502, ur.headers);
      ur.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    flight,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
