/**
 * kill -9 of the patcher at each of its steps, on the real node of node.e2e.test.ts (EKS AL2023
 * layout, real systemd and D-Bus, the kubelet stand-in; see test/node/harness.ts). The patcher
 * is the built CLI, as the DaemonSet runs it. Each step is hit exactly, not by timing:
 * - the file steps with strace's fault injection, which delivers SIGKILL on entry to the Nth
 *   rename(2) of the process: every write of the patcher is atomic (temporary file, rename), so
 *   "before rename N" is "after write N-1". On a first patch of this layout the renames are: the
 *   record of the folders it creates (created-dirs), the backup of config.json, the state file,
 *   the guard script, the guard drop-in, and config.json;
 * - the systemd steps on the CLI's own log lines (daemon-reload done; restart requested; kubelet
 *   runs again, i.e. during the health wait), killed as soon as the line is read.
 * After each kill: the node reboots with the image service still serving, and kubelet must come
 * up healthy; it reboots again with the socket gone (the pod is gone too), and kubelet must come
 * up healthy on its runtime; then a new patcher run converges on the socket, and a revert leaves
 * kubelet's files as they were before the killed run (`diff -r`).
 */
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runPatch, runRevert } from '../src/run.js';
import { bounded, run as runCmd } from './node/bounded.js';
import { CLI, CONFIG, NODE_E2E, SOCKET, STEP_MS, TestNode } from './node/harness.js';

jest.setTimeout(6 * STEP_MS);
const maybe = NODE_E2E ? describe : describe.skip;
const opts = { mode: 'image-service' as const, kubeletVersion: 'v1.31.0' };
const t = new TestNode();
const DIRS = ['etc/kubernetes', 'etc/eks', 'etc/systemd/system'];

if (NODE_E2E) {
  beforeAll(async () => {
    await runCmd('strace', ['-V'], 10_000, 'strace -V').then((r) => {
      if (r.code !== 0) throw new Error('strace is missing (tools/install-deps.sh installs it)');
    });
    await t.start();
  }, 20 * 60_000);
  afterAll(() => t.stop(), STEP_MS);
}

type Kill = { rename: number } | { line: string };

/** The built CLI's `patch` on the test node, as the DaemonSet runs it (with a health timeout in seconds when given). */
const patchArgs = (healthTimeout?: string): string[] => [
  CLI,
  'patch',
  '--root',
  t.root,
  '--dbus',
  t.node.bus,
  '--healthz',
  t.healthz,
  ...(healthTimeout === undefined ? [] : ['--health-timeout', healthTimeout]),
  '--mode',
  'image-service',
  '--kubelet-version',
  'v1.31.0',
  '--socket-seen-at',
  join(t.socketDir, 'image-service.sock'),
];

/**
 * Runs `node-patcher patch` and kills it with SIGKILL at `at`. Resolves with what it logged, once
 * it is dead; fails when it finished before the kill point (the step was never reached).
 */
async function patchKilledAt(at: Kill): Promise<string> {
  const cli = patchArgs('60');
  const cmd = 'rename' in at ? 'strace' : process.execPath;
  const args =
    'rename' in at ? ['-f', '-qq', '-o', '/dev/null', '-e', 'trace=rename,renameat,renameat2', '-e', `inject=rename,renameat,renameat2:signal=KILL:when=${at.rename}`, process.execPath, ...cli] : cli;
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (c: Buffer) => {
    out += c.toString();
    if ('line' in at && out.includes(`"msg":"${at.line}`)) child.kill('SIGKILL');
  });
  child.stderr.on('data', (c: Buffer) => (out += c.toString()));
  const [code, signal] = await bounded(new Promise<[number | null, string | null]>((r) => child.once('exit', (c, s) => r([c, s]))), STEP_MS, `the patcher to reach ${JSON.stringify(at)}`);
  // strace passes the tracee's death on as its own exit status (128 + 9).
  if (!(signal === 'SIGKILL' || code === 137)) throw new Error(`the patcher was not killed at ${JSON.stringify(at)} (exit ${code ?? signal}): ${out}`);
  return out;
}

const STEPS: Array<[string, Kill]> = [
  ['on the rename of its first file (created-dirs)', { rename: 1 }],
  ['after created-dirs, before the backup of config.json is in place', { rename: 2 }],
  ['after the backup, before the state file', { rename: 3 }],
  ['after the state file, before the first node file', { rename: 4 }],
  ['after the guard script', { rename: 5 }],
  ['after the guard drop-in, before config.json', { rename: 6 }],
  ['after daemon-reload', { line: 'daemon-reload done' }],
  ['after the restart was requested', { line: 'kubelet.service restart requested' }],
  ['during the health wait on the new kubelet', { line: 'kubelet.service runs again' }],
];

maybe('a real node: kill -9 of the patcher at each step', () => {
  it.each(STEPS)('killed %s: kubelet starts after a reboot with and without the socket, and a new run converges', async (_name, at) => {
    const baseline = mkdtempSync(join(tmpdir(), 'rp-node-baseline-'));
    for (const d of DIRS) cpSync(join(t.root, d), join(baseline, d), { recursive: true, verbatimSymlinks: true });
    await t.startService();
    const out = await patchKilledAt(at);
    if ('rename' in at) expect(out).not.toContain('"msg":"patched"');

    // The image service still serves (its pod lives on): whatever the files say, kubelet starts.
    await t.reboot();
    await t.kubeletUp();
    expect(['', `unix://${SOCKET}`]).toContain((await t.standin()).imageServiceEndpoint);

    // The socket is gone too: the guard puts kubelet on its runtime before it starts.
    await t.stopService();
    await t.reboot();
    await t.kubeletUp();
    expect((await t.standin()).imageServiceEndpoint).toBe('');
    expect(JSON.parse(t.file(CONFIG)).imageServiceEndpoint).toBeUndefined();

    // A new pod: its patcher converges.
    await t.startService();
    expect(await runPatch(t.run(), opts)).toMatch(/^(patched|unchanged)$/);
    expect((await t.standin()).imageServiceEndpoint).toBe(`unix://${SOCKET}`);
    expect(await runRevert(t.run())).toBe('reverted');
    await t.kubeletUp();
    expect((await t.standin()).imageServiceEndpoint).toBe('');
    for (const d of DIRS) {
      const r = await runCmd('diff', ['-r', '--no-dereference', join(baseline, d), join(t.root, d)], 30_000, `diff -r ${d}`);
      expect([d, r.stdout]).toEqual([d, '']);
    }
    // Nothing of the killed run is left either (its state folder, a temporary file).
    expect(existsSync(join(t.root, 'var/lib/registry-proxy'))).toBe(false);
    expect(existsSync(join(t.root, 'etc/registry-proxy'))).toBe(false);
    await t.stopService();
    rmSync(baseline, { recursive: true, force: true });
  });

  it('the kill points are all reached: an unkilled run does exactly six renames', async () => {
    await t.startService();
    // strace counts the renames of a whole run; a seventh would be a write the steps above miss.
    const r = await runCmd('strace', ['-f', '-qq', '-c', '-e', 'trace=rename,renameat,renameat2', process.execPath, ...patchArgs()], STEP_MS, 'an unkilled patcher run under strace');
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/\s6\s+(\d+\s+)?rename/);
    expect(await runRevert(t.run())).toBe('reverted');
    await t.stopService();
  });
});
