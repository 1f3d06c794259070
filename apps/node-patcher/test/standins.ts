import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttp2Server } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import dbus from 'dbus-next';

/** A real dbus-daemon on a private bus (a socket in a temporary folder). */
export async function startBus(): Promise<{ address: string; stop(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'rp-dbus-'));
  const address = `unix:path=${join(dir, 'system_bus_socket')}`;
  writeFileSync(
    join(dir, 'bus.conf'),
    `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>${address}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
`,
  );
  const p: ChildProcess = spawn('dbus-daemon', ['--config-file', join(dir, 'bus.conf'), '--nofork', '--print-address'], { stdio: ['ignore', 'pipe', 'pipe'] });
  await new Promise<void>((resolve, reject) => {
    p.stdout?.once('data', () => resolve());
    p.once('exit', (code) => reject(new Error(`dbus-daemon exited ${code}`)));
  });
  const gone = () => new Promise<void>((r) => (p.exitCode !== null ? r() : (p.once('exit', () => r()), p.kill('SIGTERM'))));
  return { address, stop: () => gone().then(() => rmSync(dir, { recursive: true, force: true })) };
}

/**
 * A stand-in for systemd on that bus (org.freedesktop.systemd1): Manager.Reload, LoadUnit and
 * RestartUnit, and the unit's ActiveState, InvocationID, ActiveEnterTimestamp and MainPID as
 * D-Bus properties, as systemd exports them. It records each call; `onRestart` is the "kubelet"
 * restarting and says whether a new process really started (false: the job was taken, but the
 * old kubelet keeps running, as when a restart hangs); `onReload` runs before Reload answers
 * (a promise that never settles: a systemd that never answers). The real systemd is in node.e2e.test.ts.
 */
export async function startSystemd(
  address: string,
  onRestart: (unit: string) => boolean | void,
  onReload?: () => Promise<void>,
): Promise<{ calls: Array<[string, string]>; reloads: () => number; events: string[]; stop(): void }> {
  const calls: Array<[string, string]> = [];
  const events: string[] = [];
  let reloads = 0;
  const run = { pid: 4242, invocation: Buffer.alloc(16, 1), enteredAt: BigInt(Date.now()) * 1000n };
  const { ACCESS_READ } = dbus.interface;
  class Manager extends dbus.interface.Interface {
    async Reload(): Promise<void> {
      reloads++;
      events.push('reload');
      await onReload?.();
    }
    LoadUnit(name: string): string {
      return `/org/freedesktop/systemd1/unit/${name.replace(/\./g, '_2e')}`;
    }
    RestartUnit(name: string, mode: string): string {
      calls.push([name, mode]);
      events.push(`restart ${name}`);
      if (onRestart(name) !== false) {
        run.pid++;
        run.invocation = Buffer.alloc(16, run.pid % 256);
        run.enteredAt = BigInt(Date.now()) * 1000n;
      }
      return `/org/freedesktop/systemd1/job/${calls.length}`;
    }
  }
  Manager.configureMembers({ methods: { Reload: { inSignature: '', outSignature: '' }, LoadUnit: { inSignature: 's', outSignature: 'o' }, RestartUnit: { inSignature: 'ss', outSignature: 'o' } } });
  class Unit extends dbus.interface.Interface {
    get ActiveState(): string {
      return 'active';
    }
    get InvocationID(): Buffer {
      return run.invocation;
    }
    get ActiveEnterTimestamp(): bigint {
      return run.enteredAt;
    }
  }
  Unit.configureMembers({
    properties: { ActiveState: { signature: 's', access: ACCESS_READ }, InvocationID: { signature: 'ay', access: ACCESS_READ }, ActiveEnterTimestamp: { signature: 't', access: ACCESS_READ } },
  });
  class Service extends dbus.interface.Interface {
    get MainPID(): number {
      return run.pid;
    }
  }
  Service.configureMembers({ properties: { MainPID: { signature: 'u', access: ACCESS_READ } } });
  const bus = dbus.sessionBus({ busAddress: address });
  // A test may stop the bus under it (or answer a call after that): nothing to report then.
  bus.on('error', () => undefined);
  await bus.requestName('org.freedesktop.systemd1', 0);
  bus.export('/org/freedesktop/systemd1', new Manager('org.freedesktop.systemd1.Manager'));
  bus.export('/org/freedesktop/systemd1/unit/kubelet_2eservice', new Unit('org.freedesktop.systemd1.Unit'));
  bus.export('/org/freedesktop/systemd1/unit/kubelet_2eservice', new Service('org.freedesktop.systemd1.Service'));
  return { calls, reloads: () => reloads, events, stop: () => bus.disconnect() };
}

/** kubelet's /healthz, as a stand-in whose answer the test decides. */
export async function startHealthz(healthy: () => boolean): Promise<{ url: string; stop(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    if (req.url !== '/healthz') return void res.writeHead(404).end();
    if (healthy()) res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    else res.writeHead(500, { 'content-type': 'text/plain' }).end('[-]syncloop failed');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/healthz`, stop: () => new Promise((r) => server.close(() => r())) };
}

/**
 * A stand-in for the Kubernetes API's Node resource: `GET` and JSON-patch `PATCH` on
 * `/api/v1/nodes/<name>`, bearer token required, the Node's JSON as the API server keeps it.
 */
export async function startApiServer(nodes: Record<string, Record<string, unknown>>, token: string): Promise<{ url: string; patches: unknown[]; stop(): Promise<void> }> {
  const patches: unknown[] = [];
  const status = (res: ServerResponse, code: number, reason: string, message: string): void =>
    void res.writeHead(code, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code }));
  const server = createServer((req, res): void => {
    if (req.headers.authorization !== `Bearer ${token}`) return status(res, 401, 'Unauthorized', 'Unauthorized');
    const m = /^\/api\/v1\/nodes\/([^/?]+)/.exec(req.url ?? '');
    const node = m ? nodes[decodeURIComponent(m[1] as string)] : undefined;
    if (!m || !node) return status(res, 404, 'NotFound', `nodes "${m?.[1]}" not found`);
    if (req.method === 'GET') return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(node));
    if (req.method !== 'PATCH') return status(res, 405, 'MethodNotAllowed', 'method not allowed');
    if (req.headers['content-type'] !== 'application/json-patch+json')
      return status(
        res,
        415,
        'UnsupportedMediaType',
        `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml`,
      );
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', (): void => {
      const ops = JSON.parse(body) as Array<{ op: string; path: string; value?: unknown }>;
      patches.push(JSON.parse(body)); // a copy: the ops below end up inside the Node
      for (const op of ops) {
        const parts = op.path
          .split('/')
          .slice(1)
          .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
        const key = parts.pop() as string;
        let parent: Record<string, unknown> = node;
        for (const p of parts) {
          const next = parent[p];
          if (typeof next !== 'object' || next === null) return status(res, 422, 'Invalid', `jsonpatch ${op.op} operation does not apply: doc is missing path: ${op.path}`);
          parent = next as Record<string, unknown>;
        }
        if (op.op === 'add' || op.op === 'replace') parent[key] = op.value;
        else if (op.op === 'remove') {
          if (!(key in parent)) return status(res, 422, 'Invalid', `jsonpatch remove operation does not apply: doc is missing key: ${op.path}`);
          delete parent[key];
        } else return status(res, 422, 'Invalid', `unsupported op ${op.op}`);
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(node));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, patches, stop: () => new Promise((r) => server.close(() => r())) };
}

/**
 * A registry (or the proxy) in front of which containerd would pull through a mirror: manifests
 * behind Docker's token protocol (401 + `WWW-Authenticate: Bearer realm=...,service=...,scope=...`,
 * then `GET realm?service&scope` for a token). With `anonymous`, a request without credentials
 * gets a pull token, as the proxy does for an `account: anonymous` rule; without, it gets 401.
 * Only `library/pause:3.9` exists. A stand-in: the test is about what the patcher sends.
 */
export async function startRegistry(o: { anonymous: boolean }): Promise<{ url: string; requests: string[]; stop(): Promise<void> }> {
  const requests: string[] = [];
  let url = '';
  const server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url} ${req.headers.authorization ? 'auth' : 'anon'}`);
    const u = new URL(req.url ?? '/', url);
    if (u.pathname === '/token') {
      if (!o.anonymous && !req.headers.authorization)
        return void res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }));
      return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: 'anon-token', expires_in: 300 }));
    }
    const m = /^\/v2\/(.+)\/manifests\/([^/]+)$/.exec(u.pathname);
    if (!m) return void res.writeHead(404).end();
    if (req.headers.authorization !== 'Bearer anon-token') {
      return void res.writeHead(401, { 'www-authenticate': `Bearer realm="${url}/token",service="registry-proxy",scope="repository:${m[1]}:pull"`, 'content-type': 'application/json' }).end();
    }
    if (`${m[1]}:${m[2]}` !== 'library/pause:3.9') return void res.writeHead(404, { 'content-type': 'application/json' }).end();
    res.writeHead(200, { 'content-type': 'application/vnd.oci.image.index.v1+json', 'docker-content-digest': `sha256:${'0'.repeat(64)}`, 'content-length': '2' }).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url, requests, stop: () => new Promise((r) => server.close(() => r())) };
}

/** An HTTP/2 server on a unix socket (gRPC is HTTP/2): what isServed() looks for. */
export async function serveHttp2(path: string): Promise<{ stop(): Promise<void> }> {
  mkdirSync(dirname(path), { recursive: true });
  const server = createHttp2Server((_req, res) => res.end());
  await new Promise<void>((r) => server.listen(path, r));
  return { stop: () => new Promise<void>((r) => server.close(() => r())) };
}
