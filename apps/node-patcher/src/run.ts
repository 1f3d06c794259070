import type { CoreV1Api } from '@kubernetes/client-node';
import { annotate } from './node.js';
import { checkAnonymousPull, MirrorCheckError } from './mirror-check.js';
import { isApplied, patch, plan, revert, type PatchState } from './patcher.js';
import { join } from 'node:path';
import { DEFAULT_SOCKET, type PatchOptions } from './plan.js';
import { waitServed } from './socket-check.js';
import { reloadRestartAndWait } from './systemd.js';

export interface RunOptions {
  readonly root: string;
  readonly busAddress: string;
  readonly healthz: string;
  readonly healthTimeoutMs: number;
  readonly healthIntervalMs?: number;
  /** How long one D-Bus call to systemd may take (default 60 s); then the patch is rolled back. */
  readonly callTimeoutMs?: number;
  readonly restart: boolean;
  readonly node?: { readonly api: CoreV1Api; readonly name: string };
  readonly log: (msg: string, extra?: Record<string, unknown>) => void;
  /** mirror mode: registry -> `repo:tag` pulled anonymously through the mirror before patching. */
  readonly mirrorProbes?: Readonly<Record<string, string>>;
  /** image-service: the socket as this process sees it (default: the socket under `root`). */
  readonly socketSeenAt?: string;
  /** image-service: how long to wait for the image service to serve its socket (default 120 s). */
  readonly socketWaitMs?: number;
}

/** image-service mode: the image service does not serve its socket, so nothing was written. */
export class SocketNotServedError extends Error {}

const restart = (opts: RunOptions) =>
  reloadRestartAndWait({
    busAddress: opts.busAddress,
    unit: 'kubelet.service',
    healthz: opts.healthz,
    timeoutMs: opts.healthTimeoutMs,
    ...(opts.healthIntervalMs ? { intervalMs: opts.healthIntervalMs } : {}),
    ...(opts.callTimeoutMs ? { callTimeoutMs: opts.callTimeoutMs } : {}),
    log: opts.log,
  });

const summary = (s: PatchState) => ({ mode: s.mode, layout: s.layout, patchedAt: s.patchedAt, files: s.files.map((f) => f.path) });

/**
 * Patch, restart kubelet over D-Bus, wait for its health endpoint; if kubelet does not come back
 * healthy, put everything back, restart it again, and fail. Records the outcome on the Node.
 */
export async function runPatch(opts: RunOptions, patchOpts: PatchOptions): Promise<'patched' | 'unchanged' | 'rolled-back'> {
  if (patchOpts.mode === 'mirror' && !isApplied(opts.root, patchOpts)) {
    plan(opts.root, patchOpts); // refusals of the node itself come first
    // Mirror mode is anonymous-only: prove an anonymous pull works before writing anything.
    for (const [registry, url] of Object.entries(patchOpts.mirrors ?? {})) {
      const probe = opts.mirrorProbes?.[registry];
      if (!probe)
        throw new MirrorCheckError(`mirror mode needs a probe image for ${registry} (--mirror-probe ${registry}=repo:tag) to check that containerd can pull through ${url} without credentials`);
      await checkAnonymousPull(url, registry, probe);
      opts.log('anonymous pull through the mirror works', { registry, url, probe });
    }
  }
  if (patchOpts.mode === 'image-service' && !isApplied(opts.root, patchOpts)) {
    plan(opts.root, patchOpts);
    // Kubelet is pointed at the socket only once the image service serves it: otherwise the
    // restart either finds no socket (the guard puts the runtime back, and the patch is undone
    // before it ever counted) or a dead one (kubelet cannot start, and cannot pull the image
    // service's own image either).
    const seen = opts.socketSeenAt ?? join(opts.root, patchOpts.socket ?? DEFAULT_SOCKET);
    const waitMs = opts.socketWaitMs ?? 120_000;
    opts.log('waiting for the image service to serve its socket', { socket: seen, timeoutSeconds: waitMs / 1000 });
    if (!(await waitServed(seen, waitMs))) throw new SocketNotServedError(`the image service does not serve ${seen} (waited ${waitMs / 1000} s); nothing was written, kubelet stays on its runtime`);
  }
  const result = patch(opts.root, patchOpts);
  if (result.rebased)
    opts.log('patched files were rewritten since the last patch (the provider at boot, or settings changed): re-applied over the new baseline', { rewritten: result.rebased.rewritten });
  if (!result.changed) {
    opts.log('already patched; nothing to do', summary(result.state));
    if (opts.node) await annotate(opts.node.api, opts.node.name, { ...summary(result.state), state: 'patched' });
    return 'unchanged';
  }
  opts.log('patched', summary(result.state));
  if (result.state.restart && opts.restart) {
    if (!(await restart(opts))) {
      opts.log('kubelet did not come back healthy: rolling back');
      revert(opts.root, { force: true });
      const back = await restart(opts);
      opts.log(back ? 'rolled back; kubelet healthy again' : 'rolled back; kubelet still not healthy');
      if (opts.node) await annotate(opts.node.api, opts.node.name, { ...summary(result.state), state: 'rolled-back', at: new Date().toISOString() });
      return 'rolled-back';
    }
    opts.log('kubelet healthy');
  }
  if (opts.node) await annotate(opts.node.api, opts.node.name, { ...summary(result.state), state: 'patched' });
  return 'patched';
}

/** Revert, restart kubelet when the patch needed one, and clear the Node's annotation. */
export async function runRevert(opts: RunOptions, force = false): Promise<'reverted' | 'nothing'> {
  const r = revert(opts.root, { force });
  if (!r.reverted || !r.state) {
    if (opts.node) await annotate(opts.node.api, opts.node.name, undefined);
    return 'nothing';
  }
  opts.log('reverted', summary(r.state));
  if (r.kept && r.kept.length > 0) opts.log('files rewritten since the patch were left as they are now', { kept: r.kept });
  if (r.state.restart && opts.restart) {
    if (!(await restart(opts))) opts.log('kubelet is not healthy after the revert');
  }
  if (opts.node) await annotate(opts.node.api, opts.node.name, undefined);
  return 'reverted';
}
