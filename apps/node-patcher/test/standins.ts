import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
  return { address, stop: () => new Promise<void>((r) => (p.exitCode !== null ? r() : (p.once('exit', () => r()), p.kill('SIGTERM')))) };
}

/**
 * A stand-in for systemd on that bus: org.freedesktop.systemd1.Manager.RestartUnit, which
 * records each call and runs `onRestart` (the "kubelet" restarting). No systemd can run here.
 */
export async function startSystemd(address: string, onRestart: (unit: string) => void): Promise<{ calls: Array<[string, string]>; stop(): void }> {
  const calls: Array<[string, string]> = [];
  class Manager extends dbus.interface.Interface {
    RestartUnit(name: string, mode: string): string {
      calls.push([name, mode]);
      onRestart(name);
      return `/org/freedesktop/systemd1/job/${calls.length}`;
    }
  }
  Manager.configureMembers({ methods: { RestartUnit: { inSignature: 'ss', outSignature: 'o' } } });
  const bus = dbus.sessionBus({ busAddress: address });
  await bus.requestName('org.freedesktop.systemd1', 0);
  bus.export('/org/freedesktop/systemd1', new Manager('org.freedesktop.systemd1.Manager'));
  return { calls, stop: () => bus.disconnect() };
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
    if (req.headers['content-type'] !== 'application/json-patch+json') return status(res, 415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml`);
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', (): void => {
      const ops = JSON.parse(body) as Array<{ op: string; path: string; value?: unknown }>;
      patches.push(JSON.parse(body)); // a copy: the ops below end up inside the Node
      for (const op of ops) {
        const parts = op.path.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
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
