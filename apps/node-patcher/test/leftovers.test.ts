/**
 * What a patcher killed half-way (kill -9, a node losing power) leaves behind, and that the next
 * run cleans it up: revert must still leave `diff -r` against the original tree empty. The kills
 * themselves, on a real node with strace's fault injection, are in node-crash.e2e.test.ts; here
 * the same leftovers are laid out by hand, so this runs everywhere.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { patch, revert } from '../src/patcher.js';
import { STATE_DIR } from '../src/plan.js';
import { hostTree, snapshot } from './fixtures.js';

const opts = { mode: 'image-service' as const, kubeletVersion: 'v1.31.0' };
const CONFIG = '/etc/kubernetes/kubelet/config.json';

describe('leftovers of a killed run', () => {
  it.each([
    ['created-dirs in place', 'created-dirs'],
    ['killed on the rename of created-dirs (only its complete temporary copy)', 'created-dirs.registry-proxy.tmp'],
  ])('before the state was written (%s): the next run takes the folders it created over, and revert removes them', (_name, record) => {
    const root = hostTree('eks-al2023');
    const before = snapshot(root);
    // The killed run created /var/lib/registry-proxy and its own folder, and recorded them (deepest first).
    mkdirSync(join(root, STATE_DIR, 'backup'), { recursive: true });
    writeFileSync(join(root, STATE_DIR, record), `${STATE_DIR}\n/var/lib/registry-proxy\n`);
    writeFileSync(join(root, STATE_DIR, 'backup/0.registry-proxy.tmp'), 'half a backup');
    expect(patch(root, opts).changed).toBe(true);
    expect(revert(root).reverted).toBe(true);
    expect(snapshot(root)).toEqual(before);
  });

  it("killed on the rename of a node file: revert removes that file's temporary copy and the folder it sits in", () => {
    const root = hostTree('eks-al2023');
    const before = snapshot(root);
    const state = patch(root, opts).state;
    const dropIn = state.files.find((f) => f.path.endsWith('.conf'))?.path as string;
    expect(dropIn).toBe('/etc/systemd/system/kubelet.service.d/05-registry-proxy-guard.conf');
    writeFileSync(join(root, `${dropIn}.registry-proxy.tmp`), '[Service]\n');
    expect(revert(root).reverted).toBe(true);
    expect(snapshot(root)).toEqual(before);
  });

  it('killed on the rename of the guard script: the next run (which sees the missing files as rewritten) removes its temporary copy, and revert its folder', () => {
    const root = hostTree('eks-al2023');
    const before = snapshot(root);
    const config = readFileSync(join(root, CONFIG));
    const { state } = patch(root, opts);
    // As the killed run left it: state written, no node file renamed into place yet.
    for (const f of state.files) rmSync(join(root, f.path));
    writeFileSync(join(root, CONFIG), config);
    writeFileSync(join(root, `${state.files[0]?.path}.registry-proxy.tmp`), '#!/bin/sh\n');
    expect(patch(root, opts).changed).toBe(true);
    expect(revert(root).reverted).toBe(true);
    expect(snapshot(root)).toEqual(before);
  });
});
