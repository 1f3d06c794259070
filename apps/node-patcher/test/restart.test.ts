/**
 * The patch, restart and rollback flow: a real dbus-daemon on a private bus with a small
 * systemd1 stand-in that records RestartUnit, a kubelet /healthz stand-in that the test makes
 * fail, and a Kubernetes API stand-in (Node GET and JSON patch) for the Node annotation.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { requireCommands } from '@registry-proxy/testing';
import { ANNOTATION, kubeletVersion, nodeApi } from '../src/node.js';
import { runPatch, runRevert } from '../src/run.js';
import { hostTree, snapshot } from './fixtures.js';
import { serveHttp2, startApiServer, startBus, startHealthz, startRegistry, startSystemd } from './standins.js';

jest.setTimeout(30_000);
const stops: Array<() => unknown> = [];
afterAll(async () => {
  for (const s of stops.reverse()) await s();
});

async function setup(kubeletBreaksOnPatch: boolean, restartHangs = false) {
  const root = hostTree('gke');
  const bus = await startBus();
  stops.push(bus.stop);
  // "kubelet": unhealthy for a moment after each restart; after that, healthy unless it was
  // restarted with the patched configuration and this kubelet cannot take it.
  let restartedAt = 0;
  let patchedAtRestart = false;
  const systemd = await startSystemd(bus.address, () => {
    restartedAt = Date.now();
    patchedAtRestart = readFileSync(join(root, '/home/kubernetes/kubelet-config.yaml'), 'utf8').includes('imageServiceEndpoint');
    return !restartHangs;
  });
  stops.push(systemd.stop);
  const health = await startHealthz(() => Date.now() - restartedAt > 300 && !(kubeletBreaksOnPatch && patchedAtRestart));
  stops.push(health.stop);
  const nodes: Record<string, Record<string, unknown>> = {
    'node-1': { kind: 'Node', apiVersion: 'v1', metadata: { name: 'node-1', labels: {} }, status: { nodeInfo: { kubeletVersion: 'v1.30.4' } } },
  };
  const api = await startApiServer(nodes, 'sa-token');
  stops.push(api.stop);
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: api.url, skipTLSVerify: true }],
    users: [{ name: 'u', token: 'sa-token' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  // The image service's socket, served (HTTP/2, as gRPC is): image-service mode waits for it.
  const served = await serveHttp2(join(root, 'run/registry-proxy/image-service.sock'));
  stops.push(served.stop);
  const logs: string[] = [];
  const run = {
    root,
    busAddress: bus.address,
    healthz: health.url,
    healthTimeoutMs: 3000,
    healthIntervalMs: 100,
    restart: true,
    node: { api: nodeApi(kc), name: 'node-1' },
    log: (m: string) => logs.push(m),
  };
  return { root, systemd, nodes, api, run, logs };
}

describe('patch with a kubelet restart over D-Bus', () => {
  it('restarts kubelet, waits for its health, and annotates the Node; revert undoes all of it', async () => {
    const { root, systemd, nodes, run, api } = await setup(false);
    const before = snapshot(root);
    const version = await kubeletVersion(run.node.api, 'node-1');
    expect(version).toBe('v1.30.4');
    expect(await runPatch(run, { mode: 'image-service', kubeletVersion: version as string })).toBe('patched');
    expect(systemd.calls).toEqual([['kubelet.service', 'replace']]);
    // Defect 5: systemd reads the new guard drop-in only after a daemon-reload, before the restart.
    expect(systemd.events).toEqual(['reload', 'restart kubelet.service']);
    const annotation = JSON.parse((nodes['node-1']?.['metadata'] as { annotations: Record<string, string> }).annotations[ANNOTATION] as string);
    expect(annotation).toMatchObject({ mode: 'image-service', layout: 'gke', state: 'patched' });
    expect(api.patches[0]).toEqual([
      { op: 'add', path: '/metadata/annotations', value: {} },
      { op: 'add', path: '/metadata/annotations/registry-proxy.io~1node-patcher', value: expect.any(String) },
    ]);
    // A second run changes nothing and does not restart kubelet.
    expect(await runPatch(run, { mode: 'image-service', kubeletVersion: 'v1.30.4' })).toBe('unchanged');
    expect(systemd.calls).toHaveLength(1);

    expect(await runRevert(run)).toBe('reverted');
    expect(snapshot(root)).toEqual(before);
    expect(systemd.calls).toHaveLength(2);
    expect((nodes['node-1']?.['metadata'] as { annotations: Record<string, string> }).annotations[ANNOTATION]).toBeUndefined();
  });

  it('rolls back when kubelet does not come back healthy, and says so on the Node', async () => {
    const { root, systemd, nodes, run, logs } = await setup(true);
    const before = snapshot(root);
    expect(await runPatch(run, { mode: 'image-service', kubeletVersion: 'v1.30.4' })).toBe('rolled-back');
    expect(snapshot(root)).toEqual(before);
    expect(systemd.calls).toEqual([
      ['kubelet.service', 'replace'],
      ['kubelet.service', 'replace'],
    ]);
    expect(logs).toContain('rolled back; kubelet healthy again');
    expect(JSON.parse((nodes['node-1']?.['metadata'] as { annotations: Record<string, string> }).annotations[ANNOTATION] as string)).toMatchObject({ state: 'rolled-back' });
  });

  it('defect 6: an "ok" from the old kubelet does not count: without a new main PID the patch is rolled back', async () => {
    // The restart job is taken but kubelet is never replaced, and the old one keeps answering 200.
    const { root, run, logs } = await setup(false, true);
    const before = snapshot(root);
    expect(await runPatch(run, { mode: 'image-service', kubeletVersion: 'v1.30.4' })).toBe('rolled-back');
    expect(logs).toContain('kubelet.service was not replaced by a new run');
    expect(snapshot(root)).toEqual(before);
  });

  it('does not restart kubelet for containerd mirrors', async () => {
    const { systemd, run } = await setup(false);
    const registry = await startRegistry({ anonymous: true });
    stops.push(registry.stop);
    expect(await runPatch({ ...run, root: hostTree('kubeadm'), mirrorProbes: { 'docker.io': 'library/pause:3.9' } }, { mode: 'mirror', mirrors: { 'docker.io': registry.url } })).toBe('patched');
    expect(systemd.calls).toEqual([]);
  });
});

beforeAll(async () => {
  await requireCommands('dbus-daemon');
});
