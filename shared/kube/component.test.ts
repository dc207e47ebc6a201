import { expect, test } from 'bun:test';
import { componentOf } from './component.ts';

test('componentOf: User-Agent up to the first slash, lower-cased and trimmed', () => {
  const cases: [string | null | undefined, string][] = [
    ['kubelet/v1.34.4 (linux/amd64) kubernetes/8a3b1f2', 'kubelet'],
    ['kube-proxy/v1.34.4 (linux/arm64) kubernetes/8a3b1f2', 'kube-proxy'],
    ['kubectl/v1.34.4 (linux/amd64) kubernetes/8a3b1f2', 'kubectl'],
    ['CoreDNS/1.12.0 (linux/amd64)', 'coredns'],
    ['flanneld/v0.26.0', 'flanneld'],
    ['Go-http-client/1.1', 'go-http-client'],
    ['tether', 'tether'],
    [' Tether /x', 'tether'],
    ['/v1', ''],
    ['', ''],
    [null, ''],
    [undefined, ''],
  ];
  for (const [ua, want] of cases) expect([ua, componentOf(ua)]).toEqual([ua, want]);
});
