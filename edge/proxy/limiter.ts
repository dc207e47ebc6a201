/**
 * A counting semaphore: at most `max` holders; the rest wait in arrival order. The proxy bounds its
 * concurrent upstream LISTs with it, so that a node reconnecting with many clients (or many nodes at
 * once) does not storm the apiserver with relists.
 */
export interface Limiter {
  acquire(signal?: AbortSignal): Promise<() => void>;
  readonly active: number;
  readonly waiting: number;
}

export function createLimiter(max: number): Limiter {
  let active = 0;
  const queue: (() => void)[] = [];
  const release = () => {
    active--;
    const next = queue.shift();
    if (next) next();
  };
  return {
    acquire(signal) {
      return new Promise((resolve, reject) => {
        const grant = () => {
          active++;
          let released = false;
          resolve(() => {
            if (!released) {
              released = true;
              release();
            }
          });
        };
        if (active < max) return grant();
        const entry = () => {
          signal?.removeEventListener('abort', onAbort);
          grant();
        };
        const onAbort = () => {
          const i = queue.indexOf(entry);
          if (i >= 0) queue.splice(i, 1);
          reject(signal?.reason);
        };
        signal?.addEventListener('abort', onAbort, { once: true });
        queue.push(entry);
      });
    },
    get active() {
      return active;
    },
    get waiting() {
      return queue.length;
    },
  };
}
