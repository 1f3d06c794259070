import dbus from 'dbus-next';

/** The host's system bus, as the DaemonSet mounts it. */
export const DEFAULT_BUS = 'unix:path=/run/dbus/system_bus_socket';

const SYSTEMD = 'org.freedesktop.systemd1';

/** One run of a unit, as systemd reports it: a restart changes the invocation and the main PID. */
export interface UnitRun {
  readonly activeState: string;
  readonly mainPid: number;
  readonly invocationId: string;
  readonly activeEnterTimestamp: bigint;
}

/** Calls a D-Bus method of a proxy interface; a missing one is an error that names it (dbus-next indexes methods by name). */
function invoke(iface: dbus.ClientInterface, method: string, ...args: unknown[]): Promise<unknown> {
  const fn: unknown = iface[method];
  if (typeof fn !== 'function') throw new Error(`D-Bus: no method ${method} on the interface`);
  return (fn as (...a: unknown[]) => Promise<unknown>).apply(iface, args);
}

const sameRun = (a: UnitRun, b: UnitRun) => a.invocationId === b.invocationId && a.mainPid === b.mainPid && a.activeEnterTimestamp === b.activeEnterTimestamp;

/** org.freedesktop.systemd1 on the system bus: the few calls the patcher needs. */
export class Systemd {
  private constructor(
    private readonly bus: dbus.MessageBus,
    private readonly manager: dbus.ClientInterface,
  ) {}

  static async connect(busAddress: string): Promise<Systemd> {
    const bus = dbus.sessionBus({ busAddress });
    try {
      const obj = await bus.getProxyObject(SYSTEMD, '/org/freedesktop/systemd1');
      return new Systemd(bus, obj.getInterface(`${SYSTEMD}.Manager`));
    } catch (err) {
      bus.disconnect();
      throw err;
    }
  }

  /** `systemctl daemon-reload`: systemd reads unit files and drop-ins again (returns when done). */
  async reload(): Promise<void> {
    await invoke(this.manager, 'Reload');
  }

  /** RestartUnit(unit, "replace"); returns the job path. */
  async restart(unit: string): Promise<string> {
    return (await invoke(this.manager, 'RestartUnit', unit, 'replace')) as string;
  }

  async run(unit: string): Promise<UnitRun> {
    const path = (await invoke(this.manager, 'LoadUnit', unit)) as string;
    const obj = await this.bus.getProxyObject(SYSTEMD, path);
    const props = obj.getInterface('org.freedesktop.DBus.Properties');
    const get = async (iface: string, name: string) => ((await invoke(props, 'Get', iface, name)) as { value: unknown }).value;
    const id = (await get(`${SYSTEMD}.Unit`, 'InvocationID')) as Buffer | number[];
    return {
      activeState: (await get(`${SYSTEMD}.Unit`, 'ActiveState')) as string,
      mainPid: Number(await get(`${SYSTEMD}.Service`, 'MainPID')),
      invocationId: Buffer.from(id).toString('hex'),
      activeEnterTimestamp: BigInt((await get(`${SYSTEMD}.Unit`, 'ActiveEnterTimestamp')) as bigint | number),
    };
  }

  disconnect(): void {
    this.bus.disconnect();
  }
}

export interface RestartOptions {
  readonly busAddress: string;
  readonly unit: string;
  readonly healthz: string;
  readonly timeoutMs: number;
  readonly intervalMs?: number;
  readonly log: (msg: string, extra?: Record<string, unknown>) => void;
}

/**
 * daemon-reload (new or removed drop-ins count only after it), restart the unit, and wait until
 * systemd reports a new run of it (another invocation and main PID, active) and then for its
 * health endpoint: an "ok" from the old process proves nothing. False when the time is up.
 */
export async function reloadRestartAndWait(o: RestartOptions): Promise<boolean> {
  const until = Date.now() + o.timeoutMs;
  const interval = o.intervalMs ?? 1000;
  const systemd = await Systemd.connect(o.busAddress);
  try {
    const before = await systemd.run(o.unit);
    await systemd.reload();
    o.log('daemon-reload done');
    const job = await systemd.restart(o.unit);
    o.log(`${o.unit} restart requested`, { job, mainPidBefore: before.mainPid });
    let now: UnitRun | undefined;
    for (;;) {
      now = await systemd.run(o.unit);
      if (now.activeState === 'active' && now.mainPid > 0 && !sameRun(now, before)) break;
      if (Date.now() >= until) {
        o.log(`${o.unit} was not replaced by a new run`, { activeState: now.activeState, mainPid: now.mainPid });
        return false;
      }
      await sleep(Math.min(interval, 250));
    }
    o.log(`${o.unit} runs again`, { mainPid: now.mainPid });
    return await waitHealthy(o.healthz, until - Date.now(), interval);
  } finally {
    systemd.disconnect();
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls kubelet's health endpoint until it answers 200, or the time is up. */
export async function waitHealthy(url: string, timeoutMs: number, intervalMs = 1000): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
      if (res.status === 200) return true;
    } catch {
      /* not up yet */
    }
    if (Date.now() >= until) return false;
    await sleep(intervalMs);
  }
}
