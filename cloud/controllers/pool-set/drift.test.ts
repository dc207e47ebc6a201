import { describe, expect, test } from 'bun:test';
import { foreignSpec } from './controller.ts';

const w = (managedFields: unknown[]) => ({ metadata: { name: 'w', managedFields } }) as never;

describe('drift check after a restart', () => {
  test("the hub's own apply and the workload controller's status and revision annotation are not drift", () => {
    expect(
      foreignSpec(
        w([
          { manager: 'tether-hub', operation: 'Apply', fieldsV1: { 'f:spec': {}, 'f:metadata': { 'f:labels': {} } } },
          { manager: 'kube-controller-manager', operation: 'Update', fieldsV1: { 'f:metadata': { 'f:annotations': { 'f:deployment.kubernetes.io/revision': {} } } } },
          { manager: 'kube-controller-manager', operation: 'Update', subresource: 'status', fieldsV1: { 'f:status': {} } },
        ]),
      ),
    ).toBe(false);
  });
  test('someone else owning spec fields (kubectl edit, scale) or labels is drift', () => {
    expect(foreignSpec(w([{ manager: 'kubectl-edit', operation: 'Update', fieldsV1: { 'f:spec': { 'f:paused': {} } } }]))).toBe(true);
    expect(foreignSpec(w([{ manager: 'kubectl', operation: 'Update', subresource: 'scale', fieldsV1: { 'f:spec': { 'f:replicas': {} } } }]))).toBe(true);
    expect(foreignSpec(w([{ manager: 'x', operation: 'Update', fieldsV1: { 'f:metadata': { 'f:labels': {} } } }]))).toBe(true);
  });
});
