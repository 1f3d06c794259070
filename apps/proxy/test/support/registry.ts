import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, startDaemon, waitFor, type Daemon } from './proc.js';

/** A real distribution `docker-registry` with htpasswd (bcrypt) authentication, on loopback. */
export interface TestRegistry {
  readonly url: string;
  readonly host: string;
  readonly dir: string;
  stop(): Promise<void>;
}

export async function startRegistry(users: Record<string, string>): Promise<TestRegistry> {
  const dir = mkdtempSync(join(tmpdir(), 'rp-registry-'));
  const htpasswd = join(dir, 'htpasswd');
  writeFileSync(htpasswd, Object.entries(users).map(([u, p]) => execFileSync('htpasswd', ['-nbB', u, p]).toString().trim()).join('\n') + '\n');
  const port = await freePort();
  writeFileSync(
    join(dir, 'config.yml'),
    `version: 0.1
log: {level: warn}
storage: {filesystem: {rootdirectory: ${dir}/data}, delete: {enabled: true}}
http: {addr: 127.0.0.1:${port}, secret: test-only}
auth: {htpasswd: {realm: test-registry, path: ${htpasswd}}}
`,
  );
  const daemon: Daemon = startDaemon('docker-registry', ['serve', join(dir, 'config.yml')], join(dir, 'registry.log'));
  const url = `http://127.0.0.1:${port}`;
  await waitFor('docker-registry', async () => (await fetch(`${url}/v2/`)).status === 401);
  return { url, host: `127.0.0.1:${port}`, dir, stop: () => daemon.stop() };
}
