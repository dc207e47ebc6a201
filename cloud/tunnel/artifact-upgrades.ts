/**
 * Which origin a relayed release file comes from: the EdgeUpgrade named in the node's request,
 * read with the hub's own credentials (a GET of the cluster-scoped object, cached briefly so a
 * wave of nodes costs the apiserver a few requests). The node names the object; only the object
 * says where its files are (spec.baseURL, and spec.insecure for http).
 *
 * Contract: `lookup(name)` resolves the object's uid and origin, undefined when it does not exist
 * (404); any other answer or failure rejects. Found objects are kept `ttlMs`, missing ones
 * `missingTtlMs`; concurrent lookups of a name share one request. The spec is immutable
 * (cloud/api/edge-upgrade.ts), so a cached answer is right until the object is replaced, and the
 * replacement has another uid.
 */
import type { RestClient } from '../kube/client.ts';
import { GROUP, VERSION } from '../api/keys.ts';

export interface UpgradeOrigin {
  name: string;
  uid: string;
  baseURL: string;
  insecure: boolean;
}

export type UpgradeLookup = (name: string) => Promise<UpgradeOrigin | undefined>;

export function createUpgradeLookup(rest: RestClient, o: { ttlMs?: number; missingTtlMs?: number; now?: () => number } = {}): UpgradeLookup {
  const ttl = o.ttlMs ?? 10_000;
  const missingTtl = o.missingTtlMs ?? 2_000;
  const now = o.now ?? Date.now;
  const cache = new Map<string, { at: number; value: Promise<UpgradeOrigin | undefined> }>();
  const get = async (name: string): Promise<UpgradeOrigin | undefined> => {
    const r = await rest.request<{ metadata?: { uid?: string }; spec?: { baseURL?: unknown; insecure?: unknown } }>({
      method: 'GET',
      path: `/apis/${GROUP}/${VERSION}/edgeupgrades/${encodeURIComponent(name)}`,
      timeoutMs: 10_000,
    });
    if (r.status === 404) return undefined;
    if (r.status !== 200) {
      const message = typeof r.body === 'object' && r.body && 'message' in r.body ? String((r.body as { message: unknown }).message) : '';
      throw new Error(`GET EdgeUpgrade ${name}: kube-apiserver answered ${r.status}${message ? `: ${message}` : ''}`);
    }
    const uid = r.body?.metadata?.uid;
    const baseURL = r.body?.spec?.baseURL;
    if (typeof uid !== 'string' || typeof baseURL !== 'string') throw new Error(`GET EdgeUpgrade ${name}: the object has no uid or spec.baseURL`);
    return { name, uid, baseURL, insecure: r.body?.spec?.insecure === true };
  };
  return (name) => {
    const hit = cache.get(name);
    const t = now();
    if (hit) {
      const fresh = hit.value.then(
        (v) => t - hit.at < (v ? ttl : missingTtl),
        () => false,
      );
      return fresh.then((ok) => (ok ? hit.value : refresh()));
    }
    return refresh();
    function refresh() {
      const value = get(name);
      cache.set(name, { at: now(), value });
      // A failure is not remembered: the next request asks again.
      value.catch(() => cache.get(name)?.value === value && cache.delete(name));
      return value;
    }
  };
}
