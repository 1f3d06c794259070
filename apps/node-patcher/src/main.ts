#!/usr/bin/env node
import { existsSync, readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { kubeletVersion, nodeApi } from './node.js';
import { status } from './patcher.js';
import type { Mode, PatchOptions } from './plan.js';
import { runPatch, runRevert, type RunOptions } from './run.js';
import { DEFAULT_BUS } from './systemd.js';

const log = (msg: string, extra: Record<string, unknown> = {}) => process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), app: 'node-patcher', msg, ...extra })}\n`);

function common(cmd: Command): Command {
  return cmd
    .option('--root <dir>', "the host's filesystem, as mounted into the container", '/host')
    .option('--dbus <address>', 'the host system bus (under --root unless given)', '')
    .option('--healthz <url>', "kubelet's health endpoint", 'http://127.0.0.1:10248/healthz')
    .option('--health-timeout <seconds>', 'how long kubelet has to come back healthy', '120')
    .option('--no-restart', 'change files only; do not restart kubelet')
    .option('--node <name>', 'this Node (for the kubelet version and the annotation); env NODE_NAME', process.env['NODE_NAME']);
}

function runOptions(o: { root: string; dbus: string; healthz: string; healthTimeout: string; restart: boolean; node?: string }): RunOptions {
  return {
    root: o.root,
    busAddress: o.dbus || DEFAULT_BUS.replace('unix:path=', `unix:path=${o.root.replace(/\/$/, '')}`),
    healthz: o.healthz,
    healthTimeoutMs: Number(o.healthTimeout) * 1000,
    restart: o.restart,
    ...(o.node ? { node: { api: nodeApi(), name: o.node } } : {}),
    log,
  };
}

/** A container that must not exit (a DaemonSet restarts it): wait for SIGTERM, then exit 0. */
const stayUntilStopped = () =>
  new Promise<void>((resolve) => {
    const keep = setInterval(() => undefined, 1 << 30);
    process.once('SIGTERM', () => (clearInterval(keep), resolve()));
  });

const collect = (v: string, prev: string[]) => [...prev, v];

const program = new Command().name('node-patcher').description('Points kubelet at the registry-proxy image service, its credential provider, or containerd mirrors; safely and reversibly.');

common(program.command('patch'))
  .addOption(
    new Option('--mode <mode>', 'what to set up (credential-provider authenticates every pull; mirror is anonymous-only)')
      .choices(['image-service', 'credential-provider', 'mirror'])
      .default('credential-provider'),
  )
  .option('--kubelet-version <v>', 'kubelet version (default: from the Node)')
  .option('--socket <path>', 'the image service socket', '/run/registry-proxy/image-service.sock')
  .option('--match-image <pattern>', 'credential-provider: an image pattern (repeat)', collect, [])
  .option('--provider-arg <arg>', 'credential-provider: an argument for the plugin (repeat)', collect, [])
  .option('--provider-binary <path>', "credential-provider: the plugin executable to install into kubelet's bin dir")
  .option('--provider-rules <path>', "credential-provider: the plugin's credential rules, installed on the host and passed as --config")
  .option('--mirror <registry=url>', 'mirror: a registry and the proxy URL that mirrors it (repeat)', collect, [])
  .option('--mirror-probe <registry=repo:tag>', 'mirror: an image pulled anonymously through the mirror before patching (repeat)', collect, [])
  .option('--socket-seen-at <path>', 'image-service: where this process sees the socket (default: --socket under --root)')
  .option('--socket-wait <seconds>', 'image-service: how long to wait for the image service to serve its socket before writing anything', '120')
  .option('--stay', 'after patching, keep running until stopped (the chart runs image-service mode as a container beside the image service)')
  .option('--config-dir <dir>', 'read mirrors.json ({registry: url}), mirror-probes.json ({registry: repo:tag}) and match-images.json ([patterns]) from here, as the chart mounts them')
  .action(async (o) => {
    if (o.configDir) {
      const m = `${o.configDir}/mirrors.json`;
      const i = `${o.configDir}/match-images.json`;
      const p = `${o.configDir}/mirror-probes.json`;
      if (existsSync(p)) for (const [k, v] of Object.entries(JSON.parse(readFileSync(p, 'utf8')) as Record<string, string>)) (o.mirrorProbe as string[]).push(`${k}=${v}`);
      if (existsSync(m)) for (const [k, v] of Object.entries(JSON.parse(readFileSync(m, 'utf8')) as Record<string, string>)) (o.mirror as string[]).push(`${k}=${v}`);
      if (existsSync(i)) (o.matchImage as string[]).push(...(JSON.parse(readFileSync(i, 'utf8')) as string[]));
    }
    const run = {
      ...runOptions(o),
      socketWaitMs: Number(o.socketWait) * 1000,
      ...(o.socketSeenAt ? { socketSeenAt: o.socketSeenAt as string } : {}),
      mirrorProbes: Object.fromEntries((o.mirrorProbe as string[]).map((m) => m.split('=', 2) as [string, string])),
    };
    let version: string | undefined = o.kubeletVersion;
    if (!version && o.mode === 'image-service' && run.node) version = await kubeletVersion(run.node.api, run.node.name);
    const mirrors = Object.fromEntries((o.mirror as string[]).map((m) => m.split('=', 2) as [string, string]));
    const opts: PatchOptions = {
      mode: o.mode as Mode,
      socket: o.socket,
      matchImages: o.matchImage,
      providerArgs: o.providerArg,
      mirrors,
      ...(o.providerBinary ? { providerBinary: o.providerBinary } : {}),
      ...(o.providerRules ? { providerRules: o.providerRules } : {}),
      ...(version ? { kubeletVersion: version } : {}),
    };
    const outcome = await runPatch(run, opts);
    process.exitCode = outcome === 'rolled-back' ? 3 : 0;
    if (o.stay && outcome !== 'rolled-back') await stayUntilStopped();
  });

common(program.command('revert'))
  .option('--force', 'put the originals back even over files changed since the patch')
  .action(async (o) => {
    const outcome = await runRevert(runOptions(o), !!o.force);
    if (outcome === 'nothing') log('nothing to revert');
  });

program
  .command('status')
  .option('--root <dir>', "the host's filesystem", '/host')
  .action((o: { root: string }) => {
    const s = status(o.root);
    log(s.patched ? 'patched' : 'not patched', s.patched ? { mode: s.state.mode, layout: s.state.layout, patchedAt: s.state.patchedAt, drifted: s.drifted } : {});
  });

program.parseAsync().catch((err: unknown) => {
  log('failed', { error: (err as Error).message });
  process.exitCode = 1;
});
