#!/usr/bin/env node
// Kubelet image service benchmark, side by side in one run: 20 concurrent PullImage calls of
// distinct images through the image service (CRI backend, a real containerd) vs the same kind
// of pulls made directly on containerd's CRI with the same credentials; the service's start-up
// time and RSS. The registry sits behind the proxy (static credentials). Prints numbers.
// Needs tools/install-deps.sh and a build. Env: BENCH_PULLS (20), BENCH_LAYER_KIB (2048).
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';

const root = join(import.meta.dirname, '../..');
const T = await import(join(root, 'libs/testing/dist/index.js'));
const { ImageServiceClient } = await import(join(root, 'libs/cri-image-service/dist/index.js'));
const PULLS = Number(process.env.BENCH_PULLS ?? 20);
const LAYER = Number(process.env.BENCH_LAYER_KIB ?? 2048) * 1024;
const dir = mkdtempSync(join(tmpdir(), 'rp-bench-kis-'));
const stops = [];

const rss = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
const spec = (image) => ({ image, annotations: {}, userSpecifiedImage: '', runtimeHandler: '' });
const pull = (client, image, auth) => new Promise((resolve, reject) => client.pullImage({ image: spec(image), ...(auth ? { auth } : {}) }, (e, r) => (e ? reject(e) : resolve(r.imageRef))));

try {
  const registry = await T.startRegistry({ up: 'up-pw' });
  stops.push(() => registry.stop());
  const push = new T.Pusher(registry.url, 'up', 'up-pw');
  for (let i = 0; i < 2 * PULLS; i++) {
    const img = T.makeImage([{ 'data.bin': randomBytes(LAYER) }]);
    await push.image(`bench/img${i}`, 'v1', img);
  }
  const port = await T.freePort();
  const hash = (await import('bcryptjs')).default.hashSync('bench-pw', 5);
  writeFileSync(
    join(dir, 'proxy.yaml'),
    `listen: {host: 127.0.0.1, port: ${port}}\nlog: {level: warn}\nauth: [{type: static, users: [{username: bench, passwordHash: "${hash}"}]}]\nrules: [{account: bench, repository: "**", actions: [pull]}]\nupstreams: [{name: local, url: "${registry.url}", credentials: {type: static, username: up, password: up-pw}}]\n`,
  );
  const proxy = spawn(process.execPath, [join(root, 'apps/proxy/dist/main.js'), '--config', join(dir, 'proxy.yaml')], { stdio: 'ignore' });
  stops.push(() => new Promise((r) => (proxy.once('exit', r), proxy.kill('SIGTERM'))));
  const host = `127.0.0.1:${port}`;
  await T.waitFor('proxy', async () => (await fetch(`http://${host}/healthz`)).status === 200);
  const containerd = await T.startContainerd();
  stops.push(() => containerd.stop());
  containerd.plainHttp(host);

  // The service, as a process: start-up time until the socket answers ImageFsInfo.
  const socket = join(dir, 'image.sock');
  writeFileSync(
    join(dir, 'service.yaml'),
    `socket: ${socket}\nbackend: {type: cri, socket: ${containerd.sock}}\nhealth: {host: 127.0.0.1, port: 0}\nlog: {level: warn}\ncredentials: [{hosts: ["${host}"], provider: {type: static, username: bench, password: bench-pw}}]\n`,
  );
  const t0 = performance.now();
  const { openSync } = await import('node:fs');
  const svcLog = openSync(join(dir, 'service.log'), 'a');
  const service = spawn(process.execPath, [join(root, 'apps/kubelet-image-service/dist/main.js'), '--config', join(dir, 'service.yaml')], { stdio: ['ignore', svcLog, svcLog] });
  stops.unshift(() => new Promise((r) => (service.once('exit', r), service.kill('SIGTERM'))));
  // Poll for the socket (a gRPC client that connects too early backs off for a second).
  const { existsSync } = await import('node:fs');
  while (!existsSync(socket)) {
    if (performance.now() - t0 > 10_000) throw new Error('the image service did not start');
    await new Promise((r) => setTimeout(r, 5));
  }
  const viaService = new ImageServiceClient(`unix://${socket}`, grpc.credentials.createInsecure());
  await new Promise((resolve, reject) => viaService.imageFsInfo({}, (e) => (e ? reject(e) : resolve())));
  const startupMs = performance.now() - t0;
  const rssIdle = rss(service.pid);

  const direct = new ImageServiceClient(`unix://${containerd.sock}`, grpc.credentials.createInsecure());
  const auth = { username: 'bench', password: 'bench-pw', auth: '', serverAddress: '', identityToken: '', registryToken: '' };
  const run = async (client, offset, withAuth, pid) => {
    let peak = 0;
    const sampler = pid ? setInterval(() => (peak = Math.max(peak, rss(pid))), 20) : undefined;
    const t = performance.now();
    try {
      await Promise.all(Array.from({ length: PULLS }, (_, i) => pull(client, `${host}/bench/img${offset + i}:v1`, withAuth ? auth : undefined)));
    } finally {
      clearInterval(sampler);
    }
    return { secs: (performance.now() - t) / 1000, peak };
  };
  const d = await run(direct, 0, true);
  const s = await run(viaService, PULLS, false, service.pid);
  console.log(`\nkubelet image service benchmark (${PULLS} concurrent PullImage of distinct ${LAYER / 1024} KiB images; ${new Date().toISOString()})`);
  console.log(`  directly on containerd's CRI, credentials in the request   ${d.secs.toFixed(2)} s`);
  console.log(`  through the image service (CRI backend), credentials added ${s.secs.toFixed(2)} s  (${(s.secs / d.secs).toFixed(2)}x direct; each side pulls its own 20 images, the service second)`);
  console.log(`  service start-up until ImageFsInfo answers: ${startupMs.toFixed(0)} ms`);
  console.log(`  service RSS: ${rssIdle.toFixed(0)} MB idle, peak ${s.peak.toFixed(0)} MB during the pulls`);
  viaService.close();
  direct.close();
} finally {
  for (const stop of stops) await stop().catch(() => undefined);
  if (process.env.BENCH_KEEP) console.log(`kept ${dir}`);
  else rmSync(dir, { recursive: true, force: true });
}
