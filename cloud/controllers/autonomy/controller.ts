/**
 * The autonomy controller (key: pod namespace/name). A pod bound to a node annotated
 * apps.tether.dev/autonomy-duration gets its NoExecute unreachable/not-ready tolerations set to
 * that duration (tolerations.ts); when the annotation goes, the recorded originals come back.
 * An unparsable annotation changes nothing (logged once per value). Triggers: a pod appearing
 * or changing node, tolerations or record; a node's annotation changing re-queues its pods.
 */
import { AUTONOMY_ANNOTATION, AUTONOMY_ORIGINAL_ANNOTATION } from '../../api/keys.ts';
import type { ControllerContext } from '../context.ts';
import { jsonEqual } from '../conditions.ts';
import { keyOf, splitKey, type Node, type Pod } from '../kube-types.ts';
import { createController, type Controller } from '../runner.ts';
import { parseAutonomyDuration, type Autonomy } from './duration.ts';
import { isExempt, tolerationPatch } from './tolerations.ts';

export function createAutonomyController(ctx: ControllerContext): Controller {
  const pods = ctx.informers.pods();
  const nodes = ctx.informers.nodes();
  const log = ctx.log.child({ controller: 'autonomy' });
  const byNode = new Map<string, Set<string>>();
  const warned = new Set<string>();

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

  const ctl = createController(
    'autonomy',
    [pods, nodes],
    async (key) => {
      const { namespace, name } = splitKey(key);
      const pod = pods.get(name, namespace);
      if (!pod?.spec?.nodeName || isExempt(pod)) return;
      const node = nodes.get(pod.spec.nodeName);
      if (!node) return;
      const autonomy = autonomyOf(node);
      if (autonomy === 'invalid') return;
      const patch = tolerationPatch(pod, autonomy, ctx.config.autonomyRestoreSeconds);
      if (!patch) return;
      await ctx.api.mergePatch(`/api/v1/namespaces/${namespace}/pods/${encodeURIComponent(name)}`, patch);
      log.info(autonomy ? 'eviction tolerations set for autonomy' : 'eviction tolerations restored', {
        pod: key,
        node: node.metadata.name,
        seconds: autonomy ? (autonomy.forever ? 'forever' : autonomy.seconds) : undefined,
      });
    },
    ctx.queue,
  );

  const index = (p: Pod, on: boolean) => {
    const n = p.spec?.nodeName;
    if (!n) return;
    let s = byNode.get(n);
    if (on) {
      if (!s) byNode.set(n, (s = new Set()));
      s.add(keyOf(p));
    } else {
      s?.delete(keyOf(p));
      if (s?.size === 0) byNode.delete(n);
    }
  };
  pods.on({
    add(p) {
      index(p, true);
      ctl.queue.add(keyOf(p));
    },
    update(p, old) {
      if (p.spec?.nodeName !== old.spec?.nodeName) index(old, false);
      index(p, true);
      if (
        p.spec?.nodeName !== old.spec?.nodeName ||
        !jsonEqual(p.spec?.tolerations, old.spec?.tolerations) ||
        p.metadata.annotations?.[AUTONOMY_ORIGINAL_ANNOTATION] !== old.metadata.annotations?.[AUTONOMY_ORIGINAL_ANNOTATION]
      ) {
        ctl.queue.add(keyOf(p));
      }
    },
    delete: (p) => index(p, false),
  });
  const requeuePods = (n: Node) => byNode.get(n.metadata.name)?.forEach((k) => ctl.queue.add(k));
  nodes.on({
    add: requeuePods,
    update(n, old) {
      if (n.metadata.annotations?.[AUTONOMY_ANNOTATION] !== old.metadata.annotations?.[AUTONOMY_ANNOTATION]) requeuePods(n);
    },
  });
  return ctl;
}
