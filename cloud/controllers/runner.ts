/**
 * Runs one controller: `workers` loops take keys from its work queue and reconcile them. A
 * reconcile that throws is retried with the queue's per-key exponential back-off; one that
 * succeeds resets the key's back-off, and may ask to be called again after a delay.
 */
import { messageOf } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import { apiStatusOf } from './writes.ts';
import type { ControllerMetrics } from './metrics.ts';
import { createWorkQueue, type WorkQueue, type WorkQueueOptions } from './queue.ts';

export type ReconcileResult = void | { requeueAfterMs: number };

export interface Controller {
  name: string;
  queue: WorkQueue;
  /** Informers whose caches must be filled before the first reconcile. */
  needs: { start(): Promise<void> }[];
  reconcile(key: string): Promise<ReconcileResult>;
  /** Releases what the controller holds besides the shared informers (called once its workers stopped). */
  stop?(): Promise<void>;
}

export function createController(
  name: string,
  needs: Controller['needs'],
  reconcile: (key: string) => Promise<ReconcileResult>,
  queueOpts: WorkQueueOptions = {},
): Controller {
  return { name, needs, queue: createWorkQueue(queueOpts), reconcile };
}

export interface RunningController {
  stop(): Promise<void>;
}

export function runController(c: Controller, opts: { workers: number; log: Logger; metrics: ControllerMetrics }): RunningController {
  const log = opts.log.child({ controller: c.name });
  const worker = async () => {
    for (;;) {
      const key = await c.queue.get();
      if (key === undefined) return;
      const started = performance.now();
      try {
        const result = await c.reconcile(key);
        c.queue.forget(key);
        if (result && result.requeueAfterMs > 0) c.queue.addAfter(key, result.requeueAfterMs);
        opts.metrics.reconciled(c.name, 'success', performance.now() - started);
      } catch (e) {
        const failures = c.queue.failures(key);
        const conflict = apiStatusOf(e) === 409;
        (conflict ? log.debug : failures >= 3 ? log.warn : log.info)('reconcile failed; retrying', {
          key,
          failures: failures + 1,
          error: messageOf(e),
        });
        opts.metrics.reconciled(c.name, conflict ? 'conflict' : 'error', performance.now() - started);
        if (!c.queue.isShutDown) c.queue.addRateLimited(key);
      } finally {
        c.queue.done(key);
      }
    }
  };
  const loops = Array.from({ length: opts.workers }, worker);
  opts.metrics.watchQueue(c.name, c.queue);
  return {
    async stop() {
      c.queue.shutDown();
      await Promise.all(loops);
    },
  };
}
