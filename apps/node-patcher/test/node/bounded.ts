/**
 * Waits that end. The real-node test once hung for minutes with nothing to say where: a promise
 * that never settled, behind a 15-minute Jest timeout. Every wait of these tests goes through one
 * of these, so a failure comes within its bound and names what it waited for.
 */
import { spawn } from 'node:child_process';

/** `p`, or an error naming `what` once `ms` have passed. */
export function bounded<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out after ${ms / 1000} s waiting for ${what}`)), ms);
    p.then(
      (v) => (clearTimeout(t), resolve(v)),
      (e: unknown) => (clearTimeout(t), reject(e)),
    );
  });
}

/**
 * Polls `check` until it is truthy, for at most `ms`. Unlike a plain poll loop, a check that never
 * settles (a fetch to a peer that took the connection and went quiet) ends the wait too.
 */
export async function waitUntil(what: string, check: () => Promise<unknown>, ms: number, intervalMs = 100): Promise<void> {
  const until = Date.now() + ms;
  let last: unknown;
  while (Date.now() < until) {
    try {
      if (await bounded(check(), Math.max(1, until - Date.now()), what)) return;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`timed out after ${ms / 1000} s waiting for ${what}${last ? `; last: ${(last as Error).message ?? String(last)}` : ''}`);
}

/**
 * Runs a command to its end, for at most `ms`; then kills its whole process group and fails,
 * naming `what`. (execFile's timeout kills only the first process: nsenter forks the command it
 * runs, debootstrap runs dpkg, and a surviving child holds the output pipes, so execFile's
 * promise never settled.)
 */
export function run(cmd: string, args: string[], ms: number, what: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const t = setTimeout(() => {
      try {
        process.kill(-(child.pid as number), 'SIGKILL');
      } catch {
        /* gone already */
      }
      reject(new Error(`timed out after ${ms / 1000} s waiting for ${what} (${cmd} ${args.join(' ')}); output so far: ${(stdout + stderr).slice(-1000)}`));
    }, ms);
    child.once('error', (err) => (clearTimeout(t), reject(err)));
    // 'close' comes once the pipes are drained; a grandchild that keeps them open must not hold
    // the result, so after 'exit' it gets at most 2 s.
    const finish = (code: number | null, signal: NodeJS.Signals | null) => (clearTimeout(t), resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr }));
    child.once('close', finish);
    child.once('exit', (code, signal) => setTimeout(() => finish(code, signal), 2000).unref());
  });
}
