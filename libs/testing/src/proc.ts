import { spawn, type ChildProcess } from 'node:child_process';
import { execFile } from 'node:child_process';
import { openSync, readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/** A daemon started by a test; `stop` sends SIGTERM, waits for the process to go, then SIGKILLs. */
export interface Daemon {
  readonly child: ChildProcess;
  stop(): Promise<void>;
}

/** Starts a long-running program with its output in `logFile`. */
export function startDaemon(cmd: string, args: string[], logFile: string, env?: NodeJS.ProcessEnv): Daemon {
  const fd = openSync(logFile, 'a');
  const child = spawn(cmd, args, { stdio: ['ignore', fd, fd], env: env ?? process.env });
  let exited = false;
  const gone = new Promise<void>((r) => child.once('exit', () => ((exited = true), r())));
  child.once('error', () => undefined);
  return {
    child,
    async stop() {
      if (exited || child.exitCode !== null) return;
      child.kill('SIGTERM');
      const timer = new AbortController();
      const killed = await Promise.race([gone.then(() => true), sleep(10_000, false, { signal: timer.signal }).catch(() => false)]);
      timer.abort();
      if (!killed) {
        child.kill('SIGKILL');
        await gone;
      }
    },
  };
}

/**
 * Polls `check` until it resolves truthy, or fails after `ms`. A check that never settles (a
 * request to a frozen server, say) cannot hold it past `ms`: each one is raced against the time
 * that is left, and the error names what was awaited.
 */
export async function waitFor(what: string, check: () => Promise<unknown>, ms = 20_000): Promise<void> {
  const until = Date.now() + ms;
  let last: unknown;
  while (Date.now() < until) {
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<'expired'>((resolve) => (timer = setTimeout(() => resolve('expired'), Math.max(1, until - Date.now()))));
    try {
      const r = await Promise.race([check(), expired]);
      if (r === 'expired') {
        last = new Error('the last check did not settle');
        break;
      }
      if (r) return;
    } catch (err) {
      last = err;
    } finally {
      clearTimeout(timer);
    }
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
}

/** A TCP port free on 127.0.0.1 right now. */
export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

/** Runs a command to completion; resolves with its output whatever the exit code. */
export function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { env: opts.env ?? process.env, timeout: opts.timeoutMs ?? 120_000, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** Fails with a clear message when a program the end-to-end tests need is missing. */
export async function requireCommands(...cmds: string[]): Promise<void> {
  const missing: string[] = [];
  for (const c of cmds) if ((await run('sh', ['-c', `command -v ${c}`])).code !== 0) missing.push(c);
  if (missing.length > 0) throw new Error(`missing programs: ${missing.join(', ')} (run tools/install-deps.sh as root)`);
}

export { execFile };

/**
 * SIGSTOPs a process and returns once every one of its threads is stopped. kill() returns before
 * the signal has stopped them all: a thread busy on another core stops only when it next leaves
 * the kernel, and may answer one more request first, so a test of a "frozen" server would race.
 */
export function freezeProcess(pid: number, timeoutMs = 5_000): void {
  process.kill(pid, 'SIGSTOP');
  const tasks = `/proc/${pid}/task`;
  const until = Date.now() + timeoutMs;
  // The state is the field after the ")" that closes the command name.
  const stopped = () => readdirSync(tasks).every((t) => /^ [tT] /.test(readFileSync(`${tasks}/${t}/stat`, 'utf8').replace(/^.*\)/s, '')));
  while (!stopped()) {
    if (Date.now() > until) throw new Error(`process ${pid} did not stop on SIGSTOP within ${timeoutMs} ms`);
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 2);
  }
}
