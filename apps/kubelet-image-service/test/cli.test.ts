/** The built command (`node apps/kubelet-image-service/dist/main.js`), as the DaemonSet runs it. */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getGlobalDispatcher } from 'undici';
import { run, waitFor } from '@registry-proxy/testing';

jest.setTimeout(30_000);
const MAIN = join(__dirname, '../dist/main.js');
const dir = mkdtempSync(join(tmpdir(), 'rp-kis-cli-'));

afterAll(async () => {
  await getGlobalDispatcher().close(); // fetch's keep-alive connections
});
beforeAll(() => {
  if (!existsSync(MAIN)) throw new Error('apps/kubelet-image-service is not built: run `npm run build` (npm test does it first)');
});

describe('kubelet-image-service CLI', () => {
  it('refuses a bad configuration naming the key, with exit code 2', async () => {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'backend: {type: podman}\n');
    const r = await run(process.execPath, [MAIN, '--config', bad]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('backend.type');
  });

  it('serves on its socket and health port, and on SIGTERM removes its socket and exits 0', async () => {
    // The runtime's socket only has to exist at start-up: the backend connects on first use.
    const runtime = createServer();
    const runtimeSock = join(dir, 'runtime.sock');
    await new Promise<void>((r) => runtime.listen(runtimeSock, r));
    const socket = join(dir, 'image-service.sock');
    const cfg = join(dir, 'good.yaml');
    writeFileSync(cfg, `socket: ${socket}\nbackend: {type: cri, socket: ${runtimeSock}}\nhealth: {port: 0}\n`);
    const child = spawn(process.execPath, [MAIN, '--config', cfg], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    try {
      await waitFor('image service to listen', async () => out.includes('kubelet image service listening'), 10_000);
      const listening = JSON.parse(out.split('\n').find((l) => l.includes('kubelet image service listening')) as string) as { health: string };
      expect(statSync(socket).isSocket()).toBe(true);
      expect(statSync(socket).mode & 0o777).toBe(0o600);
      expect((await fetch(`${listening.health}/healthz`)).status).toBe(200);
      expect(await (await fetch(`${listening.health}/metrics`)).text()).toContain('kubelet_image_service_rpcs_total');
    } finally {
      child.kill('SIGTERM');
      runtime.close();
    }
    expect(await exited).toBe(0);
    expect(out).toContain('shutting down');
    expect(existsSync(socket)).toBe(false);
  });
});
