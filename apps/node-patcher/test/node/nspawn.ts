/**
 * A real node for the tests: a minimal Debian root (systemd as PID 1, its real D-Bus), booted
 * with systemd-nspawn. The root is built once by build-root.sh (debootstrap, a few minutes) and
 * cached outside the repository; each test works on its own copy, which stays on disk between
 * boots, so a "reboot" is a poweroff and a boot of the same tree.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bounded, run, waitUntil } from './bounded.js';

export const CACHED_ROOT = process.env['REGISTRY_PROXY_NODE_ROOT'] ?? '/var/cache/registry-proxy-node-root';

/** Whether the cached root is built (build-root.sh marks it complete last). */
export const rootBuilt = () => existsSync(join(CACHED_ROOT, '.registry-proxy-complete'));

/** Builds the cached root when it is not there yet (needs root, debootstrap and Debian's mirror; about 4-7 min). */
export async function ensureRoot(): Promise<string> {
  if (!rootBuilt()) {
    const r = await run('sh', [join(__dirname, 'build-root.sh'), CACHED_ROOT], 15 * 60_000, `building the node root ${CACHED_ROOT} (debootstrap)`);
    if (r.code !== 0) throw new Error(`build-root.sh failed (exit ${r.code}): ${r.stderr.slice(-2000)}`);
  }
  return CACHED_ROOT;
}

/** A writable copy of the cached root (cp -a: device nodes, owners and links as they are). */
export async function copyRoot(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'rp-node-'));
  const root = join(dir, 'root');
  const r = await run('cp', ['-a', CACHED_ROOT, root], 180_000, `copying the node root to ${root}`);
  if (r.code !== 0) throw new Error(`cp -a ${CACHED_ROOT} failed: ${r.stderr}`);
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
    await waitUntil(
      'the container to start systemd',
      async () => {
        if (p.exitCode !== null || p.signalCode !== null) throw new Error(`systemd-nspawn exited (${p.exitCode ?? p.signalCode}): ${this.log.slice(-2000)}`);
        this.leader = await this.findLeader(p.pid as number);
        return this.leader > 0;
      },
      30_000,
    );
    let state = '';
    try {
      await waitUntil(
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
    const { stdout } = await run('pgrep', ['-P', String(nspawnPid)], 10_000, 'pgrep');
    for (const pid of stdout.trim().split('\n').filter(Boolean)) {
      const comm = await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '');
      if (comm.trim() === 'systemd') return Number(pid);
    }
    return 0;
  }

  /**
   * systemctl inside the container (its own systemd, over its own bus). Rejects on a non-zero exit
   * (as execFile did: `is-active` of an inactive unit), with the output on the error.
   */
  async systemctl(...args: string[]): Promise<{ stdout: string }> {
    const r = await this.inside(['systemctl', '--no-ask-password', ...args], 30_000);
    if (r.code !== 0) throw Object.assign(new Error(`systemctl ${args.join(' ')}: exit ${r.code}: ${r.stderr.trim()}`), { stdout: r.stdout });
    return r;
  }

  async journal(unit: string): Promise<string> {
    return (await this.inside(['journalctl', '-b', '-u', unit, '--no-pager', '-o', 'cat'], 30_000)).stdout;
  }

  /** A command in the container's namespaces; fails after `ms` naming it, the command killed with its children. */
  inside(cmd: string[], ms: number): Promise<{ code: number; stdout: string; stderr: string }> {
    if (this.leader <= 0) return Promise.reject(new Error(`the node is not running (${cmd.join(' ')})`));
    return run('nsenter', ['-t', String(this.leader), '-a', ...cmd], ms, `\`${cmd.join(' ')}\` in the node`);
  }

  /** A clean poweroff (SIGRTMIN+4 to systemd, as machinectl poweroff sends); waits for nspawn to exit. */
  async stop(): Promise<void> {
    if (!this.nspawn || this.nspawn.exitCode !== null) return;
    const leader = await this.findLeader(this.nspawn.pid as number);
    if (leader > 0) await run('kill', ['-s', 'SIGRTMIN+4', String(leader)], 10_000, 'kill');
    const done = await bounded(this.exited ?? Promise.resolve(), 60_000, 'the node to power off').then(
      () => true,
      () => false,
    );
    if (!done) {
      this.nspawn.kill('SIGKILL');
      await bounded(this.exited ?? Promise.resolve(), 30_000, 'systemd-nspawn to exit after SIGKILL');
    }
    this.leader = 0;
  }
}
