/**
 * The hub's Kubernetes client: the only importer of @kubernetes/client-node (1.4.x; 2.x breaks on
 * Node 20 and ignores TLS options under Bun). Everything in cloud/ that talks to the apiserver goes
 * through the clients and helpers exported here, so the dependency stays in one place.
 */
import * as k8s from '@kubernetes/client-node';
import * as http from 'node:http';
import * as https from 'node:https';
import { ErrorCode, TetherError, messageOf } from '../../shared/errors.ts';

export type KubeConfig = k8s.KubeConfig;
export type KubernetesObject = k8s.KubernetesObject;
export type V1Node = k8s.V1Node;
export type V1Pod = k8s.V1Pod;
export type V1Lease = k8s.V1Lease;
export type Informer<T extends k8s.KubernetesObject> = k8s.Informer<T> & k8s.ObjectCache<T>;

/** Loads a kubeconfig file, or the in-cluster service account when no path is given. */
export function loadKubeConfig(path?: string): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  try {
    if (path) kc.loadFromFile(path);
    else kc.loadFromCluster();
  } catch (e) {
    throw new TetherError(ErrorCode.BadConfig, `load kubeconfig ${path ?? '(in-cluster)'}: ${messageOf(e)}`, { cause: e });
  }
  if (!kc.getCurrentCluster()) throw new TetherError(ErrorCode.BadConfig, `load kubeconfig ${path ?? '(in-cluster)'}: no current cluster`);
  return kc;
}

export function makeClients(kc: k8s.KubeConfig) {
  return {
    core: kc.makeApiClient(k8s.CoreV1Api),
    apps: kc.makeApiClient(k8s.AppsV1Api),
    coordination: kc.makeApiClient(k8s.CoordinationV1Api),
    authentication: kc.makeApiClient(k8s.AuthenticationV1Api),
    certificates: kc.makeApiClient(k8s.CertificatesV1Api),
    apiextensions: kc.makeApiClient(k8s.ApiextensionsV1Api),
    custom: kc.makeApiClient(k8s.CustomObjectsApi),
    objects: k8s.KubernetesObjectApi.makeApiClient(kc),
  };
}
export type KubeClients = ReturnType<typeof makeClients>;

/** A list-watch informer over `path` (for example "/api/v1/nodes"). */
export function makeInformer<T extends k8s.KubernetesObject>(
  kc: k8s.KubeConfig,
  path: string,
  list: () => Promise<k8s.KubernetesListObject<T>>,
  labelSelector?: string,
): Informer<T> {
  return k8s.makeInformer<T>(kc, path, list, labelSelector);
}

/** The HTTP status of an error thrown by a client call, when it has one. */
export function statusCodeOf(e: unknown): number | undefined {
  const code = (e as { code?: unknown })?.code;
  return typeof code === 'number' ? code : undefined;
}

export { k8s as kube };

export interface RestRequest {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** Absolute API path, e.g. /apis/apps/v1/namespaces/default/deployments/web */
  path: string;
  query?: Record<string, string | undefined>;
  body?: unknown;
  /** Default application/json; patches name their type (application/merge-patch+json, application/apply-patch+yaml …). */
  contentType?: string;
  timeoutMs?: number;
}

export interface RestResponse<T = any> {
  status: number;
  body: T;
}

/** Raw JSON requests to the apiserver with the kubeconfig's credentials. Never throws on an HTTP status. */
export interface RestClient {
  request<T = any>(req: RestRequest): Promise<RestResponse<T>>;
}

export interface RestClientOptions {
  /** Called once per request after the answer (status 0 when no answer came), e.g. to count requests. */
  onRequest?: (method: string, path: string, status: number) => void;
  /** Connections kept open to the apiserver (default 16). */
  maxSockets?: number;
}

/**
 * A JSON client over node:http(s) with one keep-alive agent. Credentials (client certificate,
 * bearer token, a token file that rotates) are re-read from the kubeconfig for every request.
 */
export function createRestClient(kc: k8s.KubeConfig, opts: RestClientOptions = {}): RestClient {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new TetherError(ErrorCode.BadConfig, 'create kube client: kubeconfig has no current cluster');
  const server = cluster.server.replace(/\/+$/, '');
  const secure = server.startsWith('https:');
  let agent: http.Agent | undefined;
  const agentFor = (tls: https.RequestOptions): http.Agent => {
    agent ??= secure
      ? new https.Agent({ keepAlive: true, maxSockets: opts.maxSockets ?? 16, ca: tls.ca, cert: tls.cert, key: tls.key, ...(cluster.skipTLSVerify ? { rejectUnauthorized: false } : {}) })
      : new http.Agent({ keepAlive: true, maxSockets: opts.maxSockets ?? 16 });
    return agent;
  };
  return {
    async request<T>(req: RestRequest): Promise<RestResponse<T>> {
      const tls: https.RequestOptions = {};
      await kc.applyToHTTPSOptions(tls);
      const url = new URL(server + req.path);
      for (const [k, v] of Object.entries(req.query ?? {})) if (v !== undefined) url.searchParams.set(k, v);
      const payload = req.body === undefined ? undefined : typeof req.body === 'string' ? req.body : JSON.stringify(req.body);
      const headers: Record<string, string> = { accept: 'application/json', 'user-agent': 'tether-hub' };
      for (const [k, v] of Object.entries(tls.headers ?? {})) if (typeof v === 'string') headers[k.toLowerCase()] = v;
      if (tls.auth) headers.authorization = `Basic ${Buffer.from(tls.auth).toString('base64')}`;
      if (payload !== undefined) {
        headers['content-type'] = req.contentType ?? 'application/json';
        headers['content-length'] = String(Buffer.byteLength(payload));
      }
      let status = 0;
      try {
        const res = await new Promise<RestResponse<T>>((resolve, reject) => {
          const r = (secure ? https : http).request(url, { method: req.method, headers, agent: agentFor(tls), timeout: req.timeoutMs ?? 30_000 }, (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('error', reject);
            res.on('end', () => {
              const text = Buffer.concat(chunks).toString('utf8');
              let body: unknown = text;
              try {
                body = text ? JSON.parse(text) : undefined;
              } catch {
                // non-JSON bodies stay text
              }
              resolve({ status: res.statusCode ?? 0, body: body as T });
            });
          });
          r.on('timeout', () => r.destroy(new Error(`no answer in ${req.timeoutMs ?? 30_000} ms`)));
          r.on('error', reject);
          r.end(payload);
        });
        status = res.status;
        return res;
      } catch (e) {
        throw new TetherError(ErrorCode.UpstreamUnavailable, `${req.method} ${req.path}: ${messageOf(e)}`, { cause: e });
      } finally {
        opts.onRequest?.(req.method, req.path, status);
      }
    },
  };
}

/**
 * What the hub's api-stream forwarder needs of the kubeconfig: where kube-apiserver is, two
 * keep-alive agents that trust its CA, and the hub's own credentials.
 * - `agent('hub')` presents the hub's client certificate when the kubeconfig has one;
 *   `agent('bearer')` presents none, for requests that carry a pod's bearer token (the apiserver
 *   tries client certificates first, so the hub's certificate would otherwise win over the token).
 * - `hubHeaders()` gives the hub's Authorization (bearer token, a token file re-read as it
 *   rotates, or basic), at most 10 s old.
 * Neither agent caps its sockets: every watch holds one.
 */
export interface ApiUpstream {
  server: URL;
  agent(as: 'hub' | 'bearer'): http.Agent;
  hubHeaders(): Promise<Record<string, string>>;
  close(): void;
}

export async function createApiUpstream(kc: k8s.KubeConfig): Promise<ApiUpstream> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new TetherError(ErrorCode.BadConfig, 'api upstream: kubeconfig has no current cluster');
  const server = new URL(cluster.server.replace(/\/+$/, '') + '/');
  const read = async () => {
    const tls: https.RequestOptions = {};
    await kc.applyToHTTPSOptions(tls);
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(tls.headers ?? {})) if (typeof v === 'string') headers[k.toLowerCase()] = v;
    if (tls.auth) headers.authorization = `Basic ${Buffer.from(tls.auth).toString('base64')}`;
    return { tls, headers };
  };
  let first: Awaited<ReturnType<typeof read>>;
  try {
    first = await read();
  } catch (e) {
    throw new TetherError(ErrorCode.BadConfig, `api upstream: read the kubeconfig's credentials: ${messageOf(e)}`, { cause: e });
  }
  const secure = server.protocol === 'https:';
  const common = { keepAlive: true, maxFreeSockets: 256, ...(cluster.skipTLSVerify ? { rejectUnauthorized: false } : {}) };
  const make = (withCert: boolean): http.Agent =>
    secure
      ? new https.Agent({ ...common, ca: first.tls.ca, ...(withCert ? { cert: first.tls.cert, key: first.tls.key } : {}) })
      : new http.Agent({ keepAlive: true, maxFreeSockets: 256 });
  const agents = { hub: make(true), bearer: make(false) };
  let cached = { at: Date.now(), headers: first.headers };
  return {
    server,
    agent: (as) => agents[as],
    async hubHeaders() {
      if (Date.now() - cached.at > 10_000) cached = { at: Date.now(), headers: (await read()).headers };
      return cached.headers;
    },
    close() {
      agents.hub.destroy();
      agents.bearer.destroy();
    },
  };
}
