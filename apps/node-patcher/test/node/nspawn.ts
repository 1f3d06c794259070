/**
 * A real node for the tests: a minimal Debian root (systemd as PID 1, its real D-Bus), booted
 * with systemd-nspawn. The root is built once by build-root.sh (debootstrap, a few minutes) and
 * cached outside the repository; each test works on its own copy, which stays on disk between
 * boots, so a "reboot" is a poweroff and a boot of the same tree.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { waitFor } from '@registry-proxy/testing';

const exec = promisify(execFile);
export const CACHED_ROOT = process.env['REGISTRY_PROXY_NODE_ROOT'] ?? '/var/cache/registry-proxy-node-root';

/** Builds the cached root when it is not there yet (needs root, debootstrap and Debian's mirror). */
export async function ensureRoot(): Promise<string> {
  if (!existsSync(join(CACHED_ROOT, '.registry-proxy-complete'))) await exec('sh', [join(__dirname, 'build-root.sh'), CACHED_ROOT], { timeout: 15 * 60_000 });
  return CACHED_ROOT;
}

/** A writable copy of the cached root (cp -a: device nodes, owners and links as they are). */
export async function copyRoot(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'rp-node-'));
  const root = join(dir, 'root');
  await exec('cp', ['-a', CACHED_ROOT, root], { timeout: 120_000 });
  return root;
}

export class Node {
  private nspawn?: ChildProcess;
  private exited?: Promise<void>;
  leader = 0;
  log = '';

  constructor(
    readonly root: string,
    private readonly binds: readonly string[],
  ) {}

  /** The container's system bus, reached from the host through its root. */
  get bus(): string {
    return `unix:path=/proc/${this.leader}/root/run/dbus/system_bus_socket`;
  }

  async boot(): Promise<void> {
    const args = ['-q', '-D', this.root, '--boot', '--console=pipe', '--register=no', '--keep-unit', ...this.binds.map((b) => `--bind${b.startsWith('ro:') ? '-ro' : ''}=${b.replace(/^ro:/, '')}`)];
    const p = spawn('systemd-nspawn', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.nspawn = p;
    p.stdout?.on('data', (c: Buffer) => (this.log += c.toString()));
    p.stderr?.on('data', (c: Buffer) => (this.log += c.toString()));
    this.exited = new Promise((r) => p.once('exit', () => r()));
    // nspawn forks twice: its first child lives only a moment, so the leader is the child whose
    // command is systemd (taking the first child raced with it, and every later call failed).
    await waitFor(
      'the container to start systemd',
      async () => {
        this.leader = await this.findLeader(p.pid as number);
        return this.leader > 0;
      },
      20_000,
    );
    let state = '';
    try {
      await waitFor(
        'systemd to finish booting',
        async () => {
          const r = await this.systemctl('is-system-running').catch((e: { stdout?: string }) => ({ stdout: e.stdout ?? '' }));
          state = r.stdout.trim();
          return /^(running|degraded)/.test(state);
        },
        60_000,
      );
    } catch (err) {
      const jobs = await this.systemctl('list-jobs', '--no-pager').catch((e: Error) => ({ stdout: e.message }));
      throw new Error(`${(err as Error).message} (is-system-running: ${state}; jobs: ${jobs.stdout}; console: ${this.log.slice(-2000)})`);
    }
  }

  private async findLeader(nspawnPid: number): Promise<number> {
    const { stdout } = await exec('pgrep', ['-P', String(nspawnPid)]).catch(() => ({ stdout: '' }));
    for (const pid of stdout.trim().split('\n').filter(Boolean)) {
      const comm = await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '');
      if (comm.trim() === 'systemd') return Number(pid);
    }
    return 0;
  }

  /** systemctl inside the container (its own systemd, over its own bus). */
  async systemctl(...args: string[]): Promise<{ stdout: string }> {
    return exec('nsenter', ['-t', String(this.leader), '-a', 'systemctl', ...args], { timeout: 30_000 });
  }

  async journal(unit: string): Promise<string> {
    const r = await exec('nsenter', ['-t', String(this.leader), '-a', 'journalctl', '-b', '-u', unit, '--no-pager', '-o', 'cat'], { timeout: 30_000 }).catch((e: { stdout?: string }) => ({
      stdout: e.stdout ?? '',
    }));
    return r.stdout;
  }

  /** A clean poweroff (SIGRTMIN+4 to systemd, as machinectl poweroff sends); waits for nspawn to exit. */
  async stop(): Promise<void> {
    if (!this.nspawn || this.nspawn.exitCode !== null) return;
    const leader = await this.findLeader(this.nspawn.pid as number);
    if (leader > 0) await exec('kill', ['-s', 'SIGRTMIN+4', String(leader)]).catch(() => undefined);
    const done = await Promise.race([this.exited?.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 30_000))]);
    if (!done) {
      this.nspawn.kill('SIGKILL');
      await this.exited;
    }
    this.leader = 0;
  }
}
