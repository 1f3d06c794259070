/**
 * Every D-Bus call of the patcher settles. dbus-next leaves a call pending forever when the bus
 * closes the connection, and throws an unhandled 'error' event when it cannot connect at all; a
 * patcher waiting on either hangs the init container with kubelet's files half done. Here: a real
 * dbus-daemon and the systemd1 stand-in of standins.ts, whose Reload never answers, a bus that
 * goes away during a call, and an address with nothing behind it.
 */
import { join } from 'node:path';
import { requireCommands } from '@registry-proxy/testing';
import { runPatch } from '../src/run.js';
import { DbusError, reloadRestartAndWait, Systemd } from '../src/systemd.js';
import { hostTree, snapshot } from './fixtures.js';
import { serveHttp2, startBus, startHealthz, startSystemd } from './standins.js';

jest.setTimeout(30_000);
const stops: Array<() => unknown> = [];
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s();
});
beforeAll(async () => {
  await requireCommands('dbus-daemon');
});

/** A systemd whose Reload never answers. */
async function hangingReload() {
  const bus = await startBus();
  stops.push(bus.stop);
  const systemd = await startSystemd(
    bus.address,
    () => true,
    () => new Promise<void>(() => undefined),
  );
  stops.push(() => systemd.stop());
  const health = await startHealthz(() => true);
  stops.push(health.stop);
  return { bus, systemd, health };
}

describe('D-Bus calls are bounded', () => {
  it('a Reload that is never answered fails after the call timeout, naming the call, and restarts nothing', async () => {
    const { bus, systemd, health } = await hangingReload();
    const logs: Array<[string, unknown]> = [];
    const started = Date.now();
    const ok = await reloadRestartAndWait({ busAddress: bus.address, unit: 'kubelet.service', healthz: health.url, timeoutMs: 10_000, callTimeoutMs: 700, log: (m, e) => logs.push([m, e]) });
    expect(ok).toBe(false);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(logs).toContainEqual(['kubelet.service: no restart through systemd', { error: 'D-Bus: systemd did not answer Reload() within 0.7 s' }]);
    expect(systemd.events).toEqual(['reload']);
  });

  it('a bus that closes the connection during a call fails that call at once, instead of leaving it pending', async () => {
    const { bus } = await hangingReload();
    const systemd = await Systemd.connect(bus.address, 60_000);
    stops.push(() => systemd.disconnect());
    const reload = systemd.reload();
    const failed = expect(reload).rejects.toThrow(new DbusError('D-Bus: the bus closed the connection (during Reload())'));
    const started = Date.now();
    await bus.stop(); // dbus-daemon exits: every client's connection ends
    await failed;
    expect(Date.now() - started).toBeLessThan(5000);
    // Later calls on that connection fail at once too.
    await expect(systemd.run('kubelet.service')).rejects.toThrow(/closed the connection \(before LoadUnit\("kubelet.service"\)\)/);
  });

  it('an address with no bus behind it is an error that says so, not an uncaught exception', async () => {
    const missing = join(hostTree('gke'), 'run/dbus/system_bus_socket');
    await expect(Systemd.connect(`unix:path=${missing}`, 5000)).rejects.toThrow(new RegExp(`D-Bus: connect ENOENT ${missing}`));
  });

  it('runPatch rolls back (the safe direction) when systemd does not answer, and the node files are as before', async () => {
    const { bus, systemd, health } = await hangingReload();
    const root = hostTree('gke');
    const served = await serveHttp2(join(root, 'run/registry-proxy/image-service.sock'));
    stops.push(served.stop);
    const before = snapshot(root);
    const logs: string[] = [];
    const run = { root, busAddress: bus.address, healthz: health.url, healthTimeoutMs: 3000, healthIntervalMs: 100, callTimeoutMs: 500, restart: true, log: (m: string) => logs.push(m) };
    expect(await runPatch(run, { mode: 'image-service', kubeletVersion: 'v1.30.4' })).toBe('rolled-back');
    expect(snapshot(root)).toEqual(before);
    expect(logs).toEqual(expect.arrayContaining(['kubelet.service: no restart through systemd', 'kubelet did not come back healthy: rolling back', 'rolled back; kubelet still not healthy']));
    // Two Reloads asked (patch, rollback), none answered, so no restart was ever requested.
    expect(systemd.events).toEqual(['reload', 'reload']);
  });
});
