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

/**
 * How long one D-Bus call may take. Reload returns only once systemd has read every unit again,
 * which takes seconds on a busy node; nothing systemd answers takes a minute.
 */
export const DEFAULT_CALL_TIMEOUT_MS = 60_000;

/** systemd did not answer on its bus (no reply in time, or the bus closed the connection). */
export class DbusError extends Error {}

const sameRun = (a: UnitRun, b: UnitRun) => a.invocationId === b.invocationId && a.mainPid === b.mainPid && a.activeEnterTimestamp === b.activeEnterTimestamp;

/**
 * org.freedesktop.systemd1 on the system bus: the few calls the patcher needs. Every call settles:
 * dbus-next leaves a call pending forever when the bus closes the connection (a restarted
 * dbus-daemon, a rebooting node) and throws an unhandled 'error' event when it cannot connect, so
 * each call races a deadline and the connection's end, and fails with a DbusError naming it.
 */
export class Systemd {
  private ended?: Error;
  private readonly enders = new Set<(err: Error) => void>();
  private manager?: dbus.ClientInterface;

  private constructor(
    private readonly bus: dbus.MessageBus,
    private readonly callTimeoutMs: number,
  ) {
    const end = (err: Error) => {
      this.ended ??= err;
      for (const f of this.enders) f(this.ended);
    };
    bus.on('error', (err: Error) => end(new DbusError(`D-Bus: ${err.message}`)));
    // MessageBus has no 'end' event of its own; its connection does (dbus-next internals, typed loosely).
    (bus as unknown as { _connection?: NodeJS.EventEmitter })._connection?.on('end', () => end(new DbusError('D-Bus: the bus closed the connection')));
  }

  static async connect(busAddress: string, callTimeoutMs = DEFAULT_CALL_TIMEOUT_MS): Promise<Systemd> {
    const systemd = new Systemd(dbus.sessionBus({ busAddress }), callTimeoutMs);
    try {
      const obj = await systemd.settle(`the connection to ${busAddress}`, () => systemd.bus.getProxyObject(SYSTEMD, '/org/freedesktop/systemd1'));
      systemd.manager = obj.getInterface(`${SYSTEMD}.Manager`);
      return systemd;
    } catch (err) {
      systemd.disconnect();
      throw err;
    }
  }

  /** Runs one call on the bus: its result, or a DbusError when the bus ends or the time is up. */
  private settle<T>(what: string, call: () => Promise<T>): Promise<T> {
    if (this.ended) return Promise.reject(new DbusError(`${this.ended.message} (before ${what})`));
    return new Promise<T>((resolve, reject) => {
      const done = () => (clearTimeout(timer), this.enders.delete(onEnd));
      const onEnd = (err: Error) => (done(), reject(new DbusError(`${err.message} (during ${what})`)));
      const timer = setTimeout(() => (done(), reject(new DbusError(`D-Bus: systemd did not answer ${what} within ${this.callTimeoutMs / 1000} s`))), this.callTimeoutMs);
      this.enders.add(onEnd);
      call().then(
        (v) => (done(), resolve(v)),
        (e: unknown) => (done(), reject(e)),
      );
    });
  }

  /** Calls a method of a proxy interface; a missing one is an error that names it (dbus-next indexes methods by name). */
  private invoke(iface: dbus.ClientInterface, method: string, ...args: unknown[]): Promise<unknown> {
    const fn: unknown = iface[method];
    if (typeof fn !== 'function') return Promise.reject(new Error(`D-Bus: no method ${method} on the interface`));
    return this.settle(`${method}(${args.map((a) => JSON.stringify(a)).join(', ')})`, () => (fn as (...a: unknown[]) => Promise<unknown>).apply(iface, args));
  }

  private get mgr(): dbus.ClientInterface {
    if (!this.manager) throw new DbusError('D-Bus: not connected');
    return this.manager;
  }

  /** `systemctl daemon-reload`: systemd reads unit files and drop-ins again (returns when done). */
  async reload(): Promise<void> {
    await this.invoke(this.mgr, 'Reload');
  }

  /** RestartUnit(unit, "replace"); returns the job path. */
  async restart(unit: string): Promise<string> {
    return (await this.invoke(this.mgr, 'RestartUnit', unit, 'replace')) as string;
  }

  async run(unit: string): Promise<UnitRun> {
    const path = (await this.invoke(this.mgr, 'LoadUnit', unit)) as string;
    const obj = await this.settle(`introspection of ${path}`, () => this.bus.getProxyObject(SYSTEMD, path));
    const props = obj.getInterface('org.freedesktop.DBus.Properties');
    const get = async (iface: string, name: string) => ((await this.invoke(props, 'Get', iface, name)) as { value: unknown }).value;
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
  /** How long one D-Bus call may take (default DEFAULT_CALL_TIMEOUT_MS). */
  readonly callTimeoutMs?: number;
  readonly log: (msg: string, extra?: Record<string, unknown>) => void;
}

/**
 * daemon-reload (new or removed drop-ins count only after it), restart the unit, and wait until
 * systemd reports a new run of it (another invocation and main PID, active) and then for its
 * health endpoint: an "ok" from the old process proves nothing. False when the time is up, and
 * false (logged, with the call that failed) when systemd cannot be reached or does not answer:
 * the caller then rolls back, the safe direction, instead of waiting forever.
 */
export async function reloadRestartAndWait(o: RestartOptions): Promise<boolean> {
  try {
    return await reloadRestartAndWaitOrThrow(o);
  } catch (err) {
    if (!(err instanceof DbusError)) throw err;
    o.log(`${o.unit}: no restart through systemd`, { error: err.message });
    return false;
  }
}

async function reloadRestartAndWaitOrThrow(o: RestartOptions): Promise<boolean> {
  const until = Date.now() + o.timeoutMs;
  const interval = o.intervalMs ?? 1000;
  const systemd = await Systemd.connect(o.busAddress, o.callTimeoutMs);
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
