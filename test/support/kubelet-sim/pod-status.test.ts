import { expect, test } from 'bun:test';
import { createIpPool, podReferences, runningStatusPatch } from './pod-status.ts';

test('references come from volumes, projected sources, env, envFrom, init containers and pull secrets', () => {
  const refs = podReferences({
    spec: {
      imagePullSecrets: [{ name: 'pull' }],
      volumes: [
        { configMap: { name: 'vol-cm' } },
        { secret: { secretName: 'vol-secret' } },
        { projected: { sources: [{ configMap: { name: 'kube-root-ca.crt' } }, { secret: { name: 'proj-secret' } }, { serviceAccountToken: { audience: 'vault', expirationSeconds: 600 } }] } },
      ],
      initContainers: [{ env: [{ valueFrom: { secretKeyRef: { name: 'init-secret' } } }] }],
      containers: [{ env: [{ valueFrom: { configMapKeyRef: { name: 'env-cm' } } }], envFrom: [{ configMapRef: { name: 'from-cm' } }, { secretRef: { name: 'from-secret' } }] }],
    },
  });
  expect(refs.configMaps).toEqual(['env-cm', 'from-cm', 'kube-root-ca.crt', 'vol-cm']);
  expect(refs.secrets).toEqual(['from-secret', 'init-secret', 'proj-secret', 'pull', 'vol-secret']);
  expect(refs.tokens).toEqual([{ audiences: ['vault'], expirationSeconds: 600 }]);
});

test('pod IPs come from the node /24 from .10, a previous IP is kept, released IPs are reused', () => {
  const pool = createIpPool('198.18.7.2');
  expect(pool.allocate('a')).toBe('198.18.7.10');
  expect(pool.allocate('b', '198.18.7.42')).toBe('198.18.7.42');
  expect(pool.allocate('c', '198.18.7.10')).toBe('198.18.7.11'); // taken by a
  expect(pool.allocate('d', '198.18.9.50')).toBe('198.18.7.12'); // out of range
  expect(pool.allocate('a')).toBe('198.18.7.10');
  pool.release('a');
  expect(pool.allocate('e')).toBe('198.18.7.10');
});

test('the running status carries phase, IPs, conditions and one running status per container', () => {
  const pod = { metadata: { uid: 'u1' }, spec: { containers: [{ name: 'a', image: 'img:1' }], initContainers: [{ name: 'i', image: 'img:0' }] } };
  const p = runningStatusPatch(pod, { uid: 'u1', podIP: '198.18.7.10', hostIP: '198.18.7.2', startedAt: new Date('2025-01-01T00:00:00Z') });
  expect(p.metadata.uid).toBe('u1');
  expect(p.status).toMatchObject({ phase: 'Running', podIP: '198.18.7.10', podIPs: [{ ip: '198.18.7.10' }], hostIP: '198.18.7.2', startTime: '2025-01-01T00:00:00Z' });
  expect(p.status.containerStatuses[0].state.running.startedAt).toBe('2025-01-01T00:00:00Z');
  expect(p.status.initContainerStatuses[0].state.terminated.reason).toBe('Completed');
  expect(p.status['$setElementOrder/conditions'].map((c: any) => c.type)).toContain('Ready');
});
