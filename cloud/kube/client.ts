/**
 * The hub's Kubernetes client: the only importer of @kubernetes/client-node (1.4.x; 2.x breaks on
 * Node 20 and ignores TLS options under Bun). Everything in cloud/ that talks to the apiserver goes
 * through the clients and helpers exported here, so the dependency stays in one place.
 */
import * as k8s from '@kubernetes/client-node';
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
