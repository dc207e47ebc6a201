/**
 * Shared informers: one list-watch cache per resource (client-node's informer), started once and
 * shared by every controller that reads the resource. client-node's informer stops for good on a
 * watch error; here it is restarted with a back-off (from the last resourceVersion, or with a
 * relist after 410 Gone). `update` handlers get the previous object too.
 */
import { kube, type KubeConfig, type RestClient } from '../kube/client.ts';
import type { Logger } from '../../shared/log.ts';
import { ErrorCode, TetherError, messageOf } from '../../shared/errors.ts';
import type { KubeObject } from './kube-types.ts';
import { keyOf } from './kube-types.ts';

export interface Handlers<T> {
  add?(obj: T): void;
  update?(obj: T, old: T): void;
  delete?(obj: T): void;
}

export interface SharedInformer<T extends KubeObject> {
  readonly path: string;
  get(name: string, namespace?: string): T | undefined;
  list(namespace?: string): T[];
  on(h: Handlers<T>): void;
  /** Starts once (later calls share the first); resolves once the first list is in the cache (retrying until then), or when stopped. */
  start(): Promise<void>;
  stop(): Promise<void>;
  readonly synced: boolean;
}

export interface InformerOptions {
  kc: KubeConfig;
  rest: RestClient;
  log: Logger;
  labelSelector?: string;
  /** e.g. spec.nodeName=edge-1: the apiserver sends only the matching objects, so only they are cached. */
  fieldSelector?: string;
  /** Counts watch (re)connections, which client-node makes itself. */
  onWatch?: (path: string) => void;
  pageSize?: number;
}

export function createSharedInformer<T extends KubeObject>(path: string, opts: InformerOptions): SharedInformer<T> {
  const log = opts.log.child({ informer: path, ...(opts.fieldSelector ? { fieldSelector: opts.fieldSelector } : {}) });
  let synced = false;
  let stopped = false;
  let wake: () => void = () => {};
  let restartTimer: ReturnType<typeof setTimeout> | undefined;
  let backoff = 500;
  const previous = new Map<string, T>();
  const handlers: Handlers<T>[] = [];
  let starting: Promise<void> | undefined;

  const listFn = async () => {
    const items: T[] = [];
    let cont: string | undefined;
    let rv = '';
    do {
      const res = await opts.rest.request<{ items: T[]; metadata: { resourceVersion?: string; continue?: string } }>({
        method: 'GET',
        path,
        query: { labelSelector: opts.labelSelector, fieldSelector: opts.fieldSelector, limit: String(opts.pageSize ?? 500), continue: cont },
      });
      if (res.status !== 200) {
        throw Object.assign(new TetherError(ErrorCode.UpstreamUnavailable, `list ${path}: HTTP ${res.status}: ${(res.body as { message?: string } | undefined)?.message ?? ''}`), {
          statusCode: res.status,
        });
      }
      items.push(...res.body.items);
      rv = res.body.metadata.resourceVersion ?? rv;
      cont = res.body.metadata.continue || undefined;
    } while (cont);
    synced = true;
    backoff = 500;
    wake();
    return { apiVersion: 'v1', kind: 'List', metadata: { resourceVersion: rv }, items } as never;
  };

  // client-node's ListWatch, as its makeInformer builds it, plus the field selector makeInformer does not pass.
  const informer = new kube.ListWatch<any>(path, new kube.Watch(opts.kc), listFn, false, opts.labelSelector, opts.fieldSelector);
  informer.on('connect', () => opts.onWatch?.(path));
  informer.on('add', (o: T) => {
    previous.set(keyOf(o), o);
    for (const h of handlers) h.add?.(o);
  });
  informer.on('update', (o: T) => {
    const k = keyOf(o);
    const old = previous.get(k) ?? o;
    previous.set(k, o);
    for (const h of handlers) h.update?.(o, old);
  });
  informer.on('delete', (o: T) => {
    previous.delete(keyOf(o));
    for (const h of handlers) h.delete?.(o);
  });
  informer.on('error', (e: unknown) => {
    if (stopped) return;
    log.warn('watch failed; restarting', { error: messageOf(e), inMs: backoff });
    restartTimer = setTimeout(() => void informer.start(), backoff);
    backoff = Math.min(backoff * 2, 30_000);
  });

  return {
    path,
    get: (name, namespace) => informer.get(name, namespace) as T | undefined,
    list: (namespace) => informer.list(namespace) as T[],
    on: (h) => void handlers.push(h),
    start() {
      starting ??= (async () => {
        const ready = new Promise<void>((r) => (wake = r));
        void informer.start();
        if (!synced) await ready;
      })();
      return starting;
    },
    async stop() {
      stopped = true;
      wake();
      if (restartTimer) clearTimeout(restartTimer);
      await informer.stop();
    },
    get synced() {
      return synced;
    },
  };
}
