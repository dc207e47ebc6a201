/**
 * The autonomy controller (keys: `node|namespace/name` for a pod, `node|` for a node's watch).
 * A pod bound to a node annotated apps.tether.dev/autonomy-duration gets its NoExecute
 * unreachable/not-ready tolerations set to that duration (tolerations.ts); when the annotation
 * goes, the recorded originals come back. An unparsable annotation changes nothing (logged once
 * per value). Triggers: a pod appearing or changing tolerations or record; a node's annotation
 * changing re-queues its pods.
 *
 * It caches only the pods it may act on: those of nodes carrying the annotation, one watch per
 * node with a spec.nodeName field selector (a hub caching every pod of a large cluster idles at
 * tens of MB more). A node that loses the annotation keeps its watch until none of its pods
 * carries a record any more. Pods that kept a record while the hub was down (annotation removed
 * meanwhile) are found by one paged LIST at start, not kept, which opens their nodes' watches.
 */
import { AUTONOMY_ANNOTATION, AUTONOMY_ORIGINAL_ANNOTATION } from '../../api/keys.ts';
import { messageOf } from '../../../shared/errors.ts';
import type { ControllerContext } from '../context.ts';
import { jsonEqual } from '../conditions.ts';
import type { SharedInformer } from '../informers.ts';
import { keyOf, splitKey, type Node, type Pod } from '../kube-types.ts';
import { createController, type Controller } from '../runner.ts';
import { parseAutonomyDuration, type Autonomy } from './duration.ts';
import { isExempt, tolerationPatch } from './tolerations.ts';

export interface AutonomyOptions {
  /** tolerationSeconds given, when autonomy ends, to eviction tolerations the pod did not have before. */
  restoreSeconds: number;
}

const podKey = (node: string, p: Pod) => `${node}|${keyOf(p)}`;
const hasRecord = (p: Pod) => p.metadata.annotations?.[AUTONOMY_ORIGINAL_ANNOTATION] !== undefined;

export function createAutonomyController(ctx: ControllerContext, opts: AutonomyOptions): Controller {
  const nodes = ctx.informers.nodes();
  const log = ctx.log.child({ controller: 'autonomy' });
  const watches = new Map<string, SharedInformer<Pod>>();
  const warned = new Set<string>();
  let stopped = false;

  const autonomyOf = (node: Node): Autonomy | undefined | 'invalid' => {
    const text = node.metadata.annotations?.[AUTONOMY_ANNOTATION];
    if (text === undefined) return undefined;
    const a = parseAutonomyDuration(text);
    if ('error' in a) {
      const k = `${node.metadata.name}=${text}`;
      if (!warned.has(k)) log.warn('ignoring an invalid autonomy annotation; pods keep their tolerations', { node: node.metadata.name, error: a.error });
      warned.add(k);
      return 'invalid';
    }
    return a;
  };
  const annotated = (n: Node | undefined) => n?.metadata.annotations?.[AUTONOMY_ANNOTATION] !== undefined;

  const watch = (node: string) => {
    if (stopped || watches.has(node)) return;
    const pods = ctx.informers.podsOn(node);
    watches.set(node, pods);
    pods.on({
      add: (p) => ctl.queue.add(podKey(node, p)),
      update(p, old) {
        if (
          !jsonEqual(p.spec?.tolerations, old.spec?.tolerations) ||
          p.metadata.annotations?.[AUTONOMY_ORIGINAL_ANNOTATION] !== old.metadata.annotations?.[AUTONOMY_ORIGINAL_ANNOTATION]
        ) {
          ctl.queue.add(podKey(node, p));
        }
        // A restored pod may be the last one holding the watch of a node without autonomy.
        if (!annotated(nodes.get(node))) ctl.queue.add(`${node}|`);
      },
      delete: () => ctl.queue.add(`${node}|`),
    });
    void pods.start().then(() => ctl.queue.add(`${node}|`));
  };
  const unwatch = async (node: string) => {
    const pods = watches.get(node);
    watches.delete(node);
    await pods?.stop();
  };

  const reconcileNode = async (node: string) => {
    const pods = watches.get(node);
    if (!pods?.synced) return;
    const n = nodes.get(node);
    if (annotated(n)) return;
    const records = pods.list().filter(hasRecord);
    if (n && records.length > 0) return; // their pod keys restore them; their updates bring us back here
    await unwatch(node);
  };

  const reconcilePod = async (node: string, key: string) => {
    const { namespace, name } = splitKey(key);
    const pod = watches.get(node)?.get(name, namespace);
    if (!pod?.spec?.nodeName || isExempt(pod)) return;
    const n = nodes.get(pod.spec.nodeName);
    if (!n) return;
    const autonomy = autonomyOf(n);
    if (autonomy === 'invalid') return;
    const patch = tolerationPatch(pod, autonomy, opts.restoreSeconds);
    if (!patch) return;
    await ctx.api.mergePatch(`/api/v1/namespaces/${namespace}/pods/${encodeURIComponent(name)}`, patch);
    log.info(autonomy ? 'eviction tolerations set for autonomy' : 'eviction tolerations restored', {
      pod: key,
      node: n.metadata.name,
      seconds: autonomy ? (autonomy.forever ? 'forever' : autonomy.seconds) : undefined,
    });
  };

  // Pods recorded on nodes that lost the annotation while no hub watched: found once, at start.
  const scanRecords = {
    async start() {
      await nodes.start();
      // Retried like an informer's first list: the controller starts once it is done.
      for (let backoff = 500; !stopped; backoff = Math.min(backoff * 2, 30_000)) {
        const found = new Set<string>();
        try {
          await ctx.informers.scanPods((page) => {
            for (const p of page) if (p.spec?.nodeName && hasRecord(p) && !annotated(nodes.get(p.spec.nodeName))) found.add(p.spec.nodeName);
          });
        } catch (e) {
          log.warn('scan for recorded pods failed; retrying', { error: messageOf(e), inMs: backoff });
          await new Promise((r) => setTimeout(r, backoff));
          continue;
        }
        for (const node of found) watch(node);
        return;
      }
    },
  };

  const ctl = createController(
    'autonomy',
    [nodes, scanRecords],
    async (key) => {
      const bar = key.indexOf('|');
      const node = key.slice(0, bar);
      const rest = key.slice(bar + 1);
      await (rest ? reconcilePod(node, rest) : reconcileNode(node));
    },
    ctx.queue,
  );

  const requeuePods = (n: Node) => {
    const node = n.metadata.name;
    if (annotated(n)) watch(node);
    const pods = watches.get(node);
    pods?.list().forEach((p) => ctl.queue.add(podKey(node, p)));
    if (pods) ctl.queue.add(`${node}|`);
  };
  nodes.on({
    add: requeuePods,
    update(n, old) {
      if (n.metadata.annotations?.[AUTONOMY_ANNOTATION] !== old.metadata.annotations?.[AUTONOMY_ANNOTATION]) requeuePods(n);
    },
    delete: (n) => void unwatch(n.metadata.name),
  });

  // The per-node watches are this controller's own: they stop with it.
  ctl.stop = async () => {
    stopped = true;
    await Promise.all([...watches.keys()].map(unwatch));
  };
  return ctl;
}
