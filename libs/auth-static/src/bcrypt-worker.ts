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
  readonly size?: number;
  /**
   * Comparisons waiting or running at most; beyond it {@link BcryptWorkers.compare} rejects with
   * {@link AuthOverloadedError} at once. Without a bound, a burst of wrong passwords queues
   * up and every other login waits behind it (issue 11, defect 4).
   */
  readonly maxQueue?: number;
}

/**
 * Compares passwords with bcrypt hashes on worker threads. bcryptjs is plain JavaScript and
 * holds the event loop for the whole hash, even in its "async" form (about 80 ms at cost 10),
 * which would stall every transfer in flight at each login.
 */
export class BcryptWorkers {
  private readonly workers: Worker[] = [];
  private readonly pending = new Map<number, { resolve: (ok: boolean) => void; reject: (e: Error) => void; worker: Worker }>();
  private next = 0;
  private seq = 0;
  private readonly size: number;
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
    return this.pending.size;
  }

  private worker(): Worker {
    if (this.workers.length < this.size) {
      const w = new Worker(SOURCE, { eval: true });
      w.on('message', ({ id, ok }: { id: number; ok: boolean }) => {
        const p = this.pending.get(id);
        this.pending.delete(id);
        if (![...this.pending.values()].some((q) => q.worker === w)) w.unref();
        p?.resolve(ok);
      });
      const fail = (err: Error) => {
        this.workers.splice(this.workers.indexOf(w), 1);
        for (const [id, p] of this.pending) {
          if (p.worker === w) {
            this.pending.delete(id);
            p.reject(err);
          }
        }
      };
      w.on('error', fail);
      w.on('exit', (code) => fail(new Error(`bcrypt worker exited (${code})`)));
      // Held (ref'd) only while a comparison is pending: an idle worker keeps no process alive,
      // and a caller awaiting an answer is not left behind by an exiting process.
      w.unref();
      this.workers.push(w);
      return w;
    }
    return this.workers[this.next++ % this.workers.length] as Worker;
  }

  /** True when `password` matches the bcrypt `hash`; rejects with {@link AuthOverloadedError} when the queue is full. */
  compare(password: string, hash: string): Promise<boolean> {
    if (this.pending.size >= this.maxQueue) {
      this.stats.overloaded++;
      return Promise.reject(new AuthOverloadedError(`password checks saturated (${this.pending.size} queued)`));
    }
    this.stats.compares++;
    const worker = this.worker();
    const id = ++this.seq;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, worker });
      worker.ref();
      worker.postMessage({ id, password, hash });
    });
  }

  /** Stops the workers. */
  async close(): Promise<void> {
    await Promise.all(this.workers.splice(0).map((w) => w.terminate()));
  }
}

/** The process-wide pool the strategies share. */
export const bcryptWorkers = new BcryptWorkers();
