import dbus from 'dbus-next';

/** The host's system bus, as the DaemonSet mounts it. */
export const DEFAULT_BUS = 'unix:path=/run/dbus/system_bus_socket';

/** Asks systemd (org.freedesktop.systemd1 on the system bus) to restart a unit; returns the job path. */
export async function restartUnit(busAddress: string, unit: string): Promise<string> {
  const bus = dbus.sessionBus({ busAddress });
  try {
    const obj = await bus.getProxyObject('org.freedesktop.systemd1', '/org/freedesktop/systemd1');
    const manager = obj.getInterface('org.freedesktop.systemd1.Manager');
    return (await manager['RestartUnit'](unit, 'replace')) as string;
  } finally {
    bus.disconnect();
  }
}

/** Polls kubelet's health endpoint until it answers 200, or the time is up. */
export async function waitHealthy(url: string, timeoutMs: number, intervalMs = 1000): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  // kubelet takes a moment to go down after the restart job starts: look for a fresh "ok".
  await new Promise((r) => setTimeout(r, Math.min(intervalMs, 2000)));
  while (Date.now() < until) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
      if (res.status === 200) return true;
    } catch {
      /* not up yet */
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  return false;
}
