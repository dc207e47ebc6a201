import { describe, expect, test } from 'bun:test';
import { statusBody, statusText } from './status.ts';

describe('Status bodies', () => {
  test("a NotFound reads as kube-apiserver writes it: metav1.Status's field order, details before code", () => {
    // kube-apiserver v1.37.2 answered GET /api/v1/namespaces/default/pods/x so (metav1.Status, fields in struct order).
    const apiserver = '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"pods \\"x\\" not found","reason":"NotFound","details":{"name":"x","kind":"pods"},"code":404}';
    expect(statusText(statusBody(404, 'NotFound', 'pods "x" not found', { name: 'x', kind: 'pods' }))).toBe(apiserver);
  });

  test('without details, code follows reason', () => {
    expect(statusText(statusBody(410, 'Expired', 'too old resource version: 5 (9)'))).toBe(
      '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: 5 (9)","reason":"Expired","code":410}',
    );
  });

  test('an empty reason is left out, as the apiserver leaves it out', () => {
    const text = statusText(statusBody(500, '', 'resourceVersion: Invalid value'));
    expect(JSON.parse(text)).toEqual({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'resourceVersion: Invalid value', code: 500 });
    expect(text).not.toContain('reason');
  });
});
