/**
 * A small in-memory apiserver for the simulator's unit tests only (end-to-end claims use the real
 * control plane). Core collections with namespaces, LIST with `spec.nodeName` / `metadata.name`
 * field selectors, WATCH streams from a resourceVersion, create/get/put/patch/delete (PATCH merges
 * objects and merges `conditions` by type, close enough to a strategic merge for these tests),
 * delete preconditions, TokenRequests. It records every request and lets a test end or expire
 * the open watches.
 */
import type { Server } from 'bun';

export interface Recorded {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: Headers;
  body: any;
}

interface Watcher {
  match(obj: any): boolean;
  send(type: string, obj: any): void;
  close(): void;
}

export interface FakeApiserver {
  url: string;
  requests: Recorded[];
  objects: Map<string, any>;
  put(kind: string, obj: any): any;
  get(kind: string, namespace: string, name: string): any;
  remove(kind: string, namespace: string, name: string): void;
  /** Ends every open watch cleanly. */
  endWatches(): void;
  /** Sends 410 Expired on every open watch and refuses older versions from now on. */
  expireWatches(): void;
  openWatches(): number;
  stop(): void;
}

const merge = (a: any, b: any): any => {
  if (Array.isArray(b) && Array.isArray(a) && b.every((x) => x?.type)) {
    const out = [...a];
    for (const x of b) {
      const i = out.findIndex((y) => y?.type === x.type);
      if (i >= 0) out[i] = merge(out[i], x);
      else out.push(x);
    }
    return out;
  }
  if (b && typeof b === 'object' && !Array.isArray(b) && a && typeof a === 'object' && !Array.isArray(a)) {
    const out = { ...a };
    for (const [k, v] of Object.entries(b)) if (!k.startsWith('$')) out[k] = merge(a[k], v);
    return out;
  }
  return b;
};

export function startFakeApiserver(): FakeApiserver {
  const objects = new Map<string, any>(); // kind/ns/name
  const requests: Recorded[] = [];
  const watchers = new Set<Watcher>();
  let rv = 100;
  let oldestRv = 0;
  const key = (kind: string, ns: string, name: string) => `${kind}/${ns}/${name}`;

  function store(kind: string, obj: any, type: 'ADDED' | 'MODIFIED' | 'DELETED'): any {
    obj.metadata.resourceVersion = String(++rv);
    if (type === 'DELETED') objects.delete(key(kind, obj.metadata.namespace ?? '', obj.metadata.name));
    else objects.set(key(kind, obj.metadata.namespace ?? '', obj.metadata.name), obj);
    for (const w of watchers) if (w.match({ kind, obj })) w.send(type, obj);
    return obj;
  }

  const fieldMatch = (obj: any, selector: string | null) =>
    !selector ||
    selector.split(',').every((term) => {
      const [field, value] = term.split('=');
      if (field === 'spec.nodeName') return obj.spec?.nodeName === value;
      if (field === 'metadata.name') return obj.metadata?.name === value;
      return true;
    });

  const json = (status: number, body: unknown) => Response.json(body, { status });
  const statusBody = (code: number, reason: string, message = reason) => ({ kind: 'Status', apiVersion: 'v1', status: 'Failure', code, reason, message });

  function route(path: string): { kind: string; namespace: string; name?: string; sub?: string } | undefined {
    const p = path.replace(/^\/apis\/coordination\.k8s\.io\/v1/, '/api/v1').split('/').filter(Boolean).slice(2);
    let namespace = '';
    if (p[0] === 'namespaces' && p.length >= 3) {
      namespace = p[1]!;
      p.splice(0, 2);
    }
    if (!p[0]) return undefined;
    return { kind: p[0], namespace, name: p[1], sub: p[2] };
  }

  function watch(kind: string, namespace: string, q: URLSearchParams): Response {
    const from = Number(q.get('resourceVersion') || '0');
    if (from && from < oldestRv) return json(410, statusBody(410, 'Expired', 'too old resource version'));
    const enc = new TextEncoder();
    let w: Watcher;
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        w = {
          match: ({ kind: k, obj }) =>
            k === kind && (!namespace || obj.metadata.namespace === namespace) && fieldMatch(obj, q.get('fieldSelector')),
          send: (type, obj) => controller.enqueue(enc.encode(JSON.stringify({ type, object: obj }) + '\n')),
          close: () => {
            watchers.delete(w);
            try {
              controller.close();
            } catch {
              // closed already
            }
          },
        };
        watchers.add(w);
      },
      cancel: () => void watchers.delete(w),
    });
    return new Response(stream, { headers: { 'content-type': 'application/json' } });
  }

  async function handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    const text = await req.text();
    const body = text ? JSON.parse(text) : undefined;
    requests.push({ method: req.method, path: url.pathname, query: url.searchParams, headers: req.headers, body });
    const r = route(url.pathname);
    if (!r) return json(404, statusBody(404, 'NotFound'));
    const { kind, namespace, name, sub } = r;
    const q = url.searchParams;
    if (req.method === 'GET' && !name) {
      if (q.get('watch') === 'true') return watch(kind, namespace, q);
      const from = Number(q.get('resourceVersion') || '0');
      if (from && from < oldestRv) return json(410, statusBody(410, 'Expired'));
      const items = [...objects.entries()]
        .filter(([k, o]) => k.startsWith(`${kind}/`) && (!namespace || o.metadata.namespace === namespace))
        .map(([, o]) => o)
        .filter((o) => fieldMatch(o, q.get('fieldSelector')));
      return json(200, { kind: 'List', apiVersion: 'v1', metadata: { resourceVersion: String(rv) }, items });
    }
    if (req.method === 'POST' && name && sub === 'token') {
      return json(201, { kind: 'TokenRequest', apiVersion: 'authentication.k8s.io/v1', spec: body.spec, status: { token: 'fake', expirationTimestamp: new Date(Date.now() + 3600e3).toISOString() } });
    }
    if (req.method === 'POST' && !name) {
      const ns = namespace || body.metadata.namespace || '';
      if (objects.has(key(kind, ns, body.metadata.name))) return json(409, statusBody(409, 'AlreadyExists'));
      const obj = { ...body, metadata: { ...body.metadata, namespace: ns || undefined, uid: crypto.randomUUID(), creationTimestamp: new Date().toISOString() } };
      return json(201, store(kind, obj, 'ADDED'));
    }
    const existing = name ? objects.get(key(kind, namespace, name)) : undefined;
    if (!existing) return json(404, statusBody(404, 'NotFound'));
    switch (req.method) {
      case 'GET':
        return json(200, existing);
      case 'PUT':
        if (body.metadata.resourceVersion && body.metadata.resourceVersion !== existing.metadata.resourceVersion) {
          return json(409, statusBody(409, 'Conflict'));
        }
        return json(200, store(kind, { ...body, metadata: { ...body.metadata, uid: existing.metadata.uid } }, 'MODIFIED'));
      case 'PATCH':
        if (body.metadata?.uid && body.metadata.uid !== existing.metadata.uid) return json(409, statusBody(409, 'Conflict'));
        return json(200, store(kind, merge(existing, body), 'MODIFIED'));
      case 'DELETE':
        if (body?.preconditions?.uid && body.preconditions.uid !== existing.metadata.uid) return json(409, statusBody(409, 'Conflict'));
        store(kind, existing, 'DELETED');
        return json(200, existing);
    }
    return json(405, statusBody(405, 'MethodNotAllowed'));
  }

  const server: Server<undefined> = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: handle, idleTimeout: 0 });
  return {
    url: `http://127.0.0.1:${server.port}`,
    requests,
    objects,
    put: (kind, obj) => {
      obj.metadata.uid ??= crypto.randomUUID();
      return store(kind, obj, objects.has(key(kind, obj.metadata.namespace ?? '', obj.metadata.name)) ? 'MODIFIED' : 'ADDED');
    },
    get: (kind, ns, name) => objects.get(key(kind, ns, name)),
    remove: (kind, ns, name) => {
      const o = objects.get(key(kind, ns, name));
      if (o) store(kind, o, 'DELETED');
    },
    endWatches: () => [...watchers].forEach((w) => w.close()),
    expireWatches() {
      oldestRv = ++rv;
      for (const w of [...watchers]) {
        w.send('ERROR', statusBody(410, 'Expired', 'too old resource version'));
        w.close();
      }
    },
    openWatches: () => watchers.size,
    stop: () => void server.stop(true),
  };
}
