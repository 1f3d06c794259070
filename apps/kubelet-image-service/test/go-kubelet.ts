import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '@registry-proxy/testing';

const SRC = join(__dirname, 'go-kubelet');

/** One call's outcome, as go-kubelet prints it. */
export interface GoCall {
  readonly call: string;
  readonly authority: 'legacy' | 'localhost';
  readonly code: number;
  readonly message?: string;
  readonly response?: Record<string, unknown>;
}

/**
 * Builds test/go-kubelet (a grpc-go client: Debian's golang-go and golang-google-grpc-dev,
 * offline, GOPATH mode) once per source version into the temp dir, and returns the binary.
 */
export async function buildGoKubelet(): Promise<string> {
  const hash = createHash('sha256');
  for (const f of readdirSync(SRC).sort()) hash.update(f).update(readFileSync(join(SRC, f)));
  const dir = join(tmpdir(), 'rp-go-kubelet');
  const bin = join(dir, `go-kubelet-${hash.digest('hex').slice(0, 16)}`);
  if (existsSync(bin)) return bin;
  mkdirSync(dir, { recursive: true });
  // GOPATH mode against Debian's packaged sources: no module download, no network.
  const env = { ...process.env, GO111MODULE: 'off', GOPATH: '/usr/share/gocode', GOFLAGS: '', GOPROXY: 'off', GOCACHE: join(dir, 'cache') };
  await new Promise<void>((resolve, reject) => {
    execFile('go', ['build', '-o', `${bin}.${process.pid}`, '.'], { cwd: SRC, env, timeout: 300_000 }, (err, _stdout, stderr) =>
      err ? reject(new Error(`go build of test/go-kubelet failed (needs golang-go and golang-google-grpc-dev): ${stderr || err.message}`)) : resolve(),
    );
  });
  renameSync(`${bin}.${process.pid}`, bin); // two suites may build at once
  return bin;
}

/** Runs the calls over one grpc-go connection dialled as `authority` says. */
export async function goKubelet(bin: string, socket: string, authority: 'legacy' | 'localhost', calls: string[], flags: string[] = []): Promise<GoCall[]> {
  const r = await run(bin, ['-socket', socket, '-dial', authority, ...flags, ...calls]);
  if (r.code !== 0) throw new Error(`go-kubelet exited ${r.code}: ${r.stderr}`);
  return r.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as GoCall);
}
