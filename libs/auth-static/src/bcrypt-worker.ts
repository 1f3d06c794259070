import { availableParallelism } from 'node:os';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { AuthOverloadedError } from '@registry-proxy/registry-core';

const BCRYPTJS = createRequire(import.meta.url).resolve('bcryptjs');
const SOURCE = `
const { parentPort } = require('node:worker_threads');
const bcrypt = require(${JSON.stringify(BCRYPTJS)});
parentPort.on('message', ({ id, password, hash }) => {
  let ok = false;
  try { ok = bcrypt.compareSync(password, hash); } catch { ok = false; }
  parentPort.postMessage({ id, ok });
});`;

/** Options of {@link BcryptWorkers}. */
export interface BcryptWorkersOptions {
  /** Worker threads; default one per core but one, at most 4. */
  readonly size?: number | undefined;
  /**
   * Comparisons waiting or running at most; beyond it {@link BcryptWorkers.compare} rejects with
   * {@link AuthOverloadedError} at once. Without a bound, a burst of wrong passwords queues
   * up and every other login waits behind it (issue 11, defect 4).
   */
  readonly maxQueue?: number;
}

interface Job {
  readonly password: string;
  readonly hash: string;
  readonly resolve: (ok: boolean) => void;
  readonly reject: (e: Error) => void;
}

/**
 * Compares passwords with bcrypt hashes on worker threads. bcryptjs is plain JavaScript and
 * holds the event loop for the whole hash, even in its "async" form (about 80 ms at cost 10),
 * which would stall every transfer in flight at each login.
 *
 * Each worker takes one comparison at a time. Waiting comparisons are served round-robin by
 * key (the username): forty wrong passwords for one account make another account's login wait
 * for at most one comparison per worker, not for all forty.
 */
export class BcryptWorkers {
  private readonly idle: Worker[] = [];
  private readonly all = new Set<Worker>();
  private readonly running = new Map<Worker, Job>();
  private readonly waiting = new Map<string, Job[]>();
  private waitingCount = 0;
  private readonly size: number;
  private closed = false;
  /** The queue bound. */
  readonly maxQueue: number;
  /** Comparisons started and refused (queue full) so far, for metrics and tests. */
  readonly stats = { compares: 0, overloaded: 0 };

  constructor(options: BcryptWorkersOptions | number = {}) {
    const o = typeof options === 'number' ? { size: options } : options;
    this.size = o.size ?? Math.max(1, Math.min(4, availableParallelism() - 1));
    this.maxQueue = o.maxQueue ?? 32;
  }

  /** Comparisons waiting or running now. */
  get queued(): number {
    return this.waitingCount + this.running.size;
  }

  private spawn(): Worker {
    const w = new Worker(SOURCE, { eval: true });
    w.on('message', ({ ok }: { id: number; ok: boolean }) => {
      const job = this.running.get(w);
      this.running.delete(w);
      // Held (ref'd) only while comparing: an idle worker keeps no process alive, and a caller
      // awaiting an answer is not left behind by an exiting process.
      w.unref();
      this.idle.push(w);
      job?.resolve(ok);
      this.pump();
    });
    const fail = (err: Error) => {
      if (!this.all.delete(w)) return;
      const i = this.idle.indexOf(w);
      if (i >= 0) this.idle.splice(i, 1);
      const job = this.running.get(w);
      this.running.delete(w);
      job?.reject(err);
      this.pump();
    };
    w.on('error', fail);
    w.on('exit', (code) => fail(new Error(`bcrypt worker exited (${code})`)));
    this.all.add(w);
    return w;
  }

  /** Hands waiting comparisons to free workers, one key after another. */
  private pump(): void {
    while (this.waitingCount > 0 && !this.closed) {
      const w = this.idle.pop() ?? (this.all.size < this.size ? this.spawn() : undefined);
      if (!w) return;
      const [key, jobs] = this.waiting.entries().next().value as [string, Job[]];
      const job = jobs.shift() as Job;
      this.waitingCount--;
      this.waiting.delete(key);
      if (jobs.length > 0) this.waiting.set(key, jobs); // to the back of the line
      this.running.set(w, job);
      w.ref();
      w.postMessage({ id: 0, password: job.password, hash: job.hash });
    }
  }

  /**
   * True when `password` matches the bcrypt `hash`; rejects with {@link AuthOverloadedError}
   * when the queue is full. `key` (the username) decides the turn: keys take turns.
   */
  compare(password: string, hash: string, key = ''): Promise<boolean> {
    if (this.queued >= this.maxQueue) {
      this.stats.overloaded++;
      return Promise.reject(new AuthOverloadedError(`password checks saturated (${this.queued} queued)`));
    }
    this.stats.compares++;
    return new Promise((resolve, reject) => {
      const jobs = this.waiting.get(key);
      if (jobs) jobs.push({ password, hash, resolve, reject });
      else this.waiting.set(key, [{ password, hash, resolve, reject }]);
      this.waitingCount++;
      this.pump();
    });
  }

  /** Stops the workers; comparisons still waiting are rejected. */
  async close(): Promise<void> {
    this.closed = true;
    for (const jobs of this.waiting.values()) for (const j of jobs) j.reject(new Error('bcrypt workers closed'));
    this.waiting.clear();
    this.waitingCount = 0;
    const workers = [...this.all];
    this.idle.length = 0;
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

/** The process-wide pool the strategies share. */
export const bcryptWorkers = new BcryptWorkers();
