import type { CoreV1Api } from '@kubernetes/client-node';
import { annotate } from './node.js';
import { patch, revert, type PatchState } from './patcher.js';
import type { PatchOptions } from './plan.js';
import { restartUnit, waitHealthy } from './systemd.js';

export interface RunOptions {
  readonly root: string;
  readonly busAddress: string;
  readonly healthz: string;
  readonly healthTimeoutMs: number;
  readonly healthIntervalMs?: number;
  readonly restart: boolean;
  readonly node?: { readonly api: CoreV1Api; readonly name: string };
  readonly log: (msg: string, extra?: Record<string, unknown>) => void;
}

const summary = (s: PatchState) => ({ mode: s.mode, layout: s.layout, patchedAt: s.patchedAt, files: s.files.map((f) => f.path) });

/**
 * Patch, restart kubelet over D-Bus, wait for its health endpoint; if kubelet does not come back
 * healthy, put everything back, restart it again, and fail. Records the outcome on the Node.
 */
export async function runPatch(opts: RunOptions, patchOpts: PatchOptions): Promise<'patched' | 'unchanged' | 'rolled-back'> {
  const result = patch(opts.root, patchOpts);
  if (!result.changed) {
    opts.log('already patched; nothing to do', summary(result.state));
    if (opts.node) await annotate(opts.node.api, opts.node.name, { ...summary(result.state), state: 'patched' });
    return 'unchanged';
  }
  opts.log('patched', summary(result.state));
  if (result.state.restart && opts.restart) {
    const job = await restartUnit(opts.busAddress, 'kubelet.service');
    opts.log('kubelet restart requested', { job });
    if (!(await waitHealthy(opts.healthz, opts.healthTimeoutMs, opts.healthIntervalMs))) {
      opts.log('kubelet did not come back healthy: rolling back');
      revert(opts.root, { force: true });
      await restartUnit(opts.busAddress, 'kubelet.service');
      const back = await waitHealthy(opts.healthz, opts.healthTimeoutMs, opts.healthIntervalMs);
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
  if (r.state.restart && opts.restart) {
    await restartUnit(opts.busAddress, 'kubelet.service');
    if (!(await waitHealthy(opts.healthz, opts.healthTimeoutMs, opts.healthIntervalMs))) opts.log('kubelet is not healthy after the revert');
  }
  if (opts.node) await annotate(opts.node.api, opts.node.name, undefined);
  return 'reverted';
}
