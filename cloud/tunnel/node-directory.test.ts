import { expect, test } from 'bun:test';
import { createNodeDirectory } from './node-directory.ts';

test('a node owns the addresses its Node object lists and its own name, case-insensitively and in canonical IP form', () => {
  const d = createNodeDirectory();
  d.setNode('n1', ['10.0.0.1', 'n1.example', 'FD00::1']);
  expect(d.nodesFor('10.0.0.1')).toEqual(['n1']);
  expect(d.nodesFor('::ffff:10.0.0.1')).toEqual(['n1']);
  expect(d.nodesFor('n1.EXAMPLE')).toEqual(['n1']);
  expect(d.nodesFor('[fd00:0::1]')).toEqual(['n1']);
  expect(d.nodesFor('n1')).toEqual(['n1']);
  expect(d.nodesFor('10.0.0.2')).toEqual([]);
  expect(d.addressesOf('n1').sort()).toEqual(['10.0.0.1', 'fd00:0:0:0:0:0:0:1', 'n1', 'n1.example']);
});

test("an announcement publishes nothing: only the Node object's addresses are accepted, every other claim is refused with a reason", () => {
  const d = createNodeDirectory();
  d.setNode('edge-a', ['198.18.1.2']);
  d.setNode('edge-b', ['198.18.2.2']);
  d.setNode('cloud-1', ['198.18.0.5']);
  d.setService('kube-system/webhook', ['10.96.0.20', 'webhook.kube-system']);
  const r = d.announce('edge-a', ['198.18.1.2', 'edge-a', '198.18.2.2', 'edge-b', '198.18.0.5', '10.96.0.20', 'webhook.kube-system.svc', 'metrics.default.svc.cluster.local', '192.168.7.7']);
  expect(r.accepted).toEqual(['198.18.1.2', 'edge-a']);
  expect(r.refused.map((x) => [x.address, x.reason])).toEqual([
    ['198.18.2.2', 'other_node'],
    ['edge-b', 'other_node'],
    ['198.18.0.5', 'other_node'],
    ['10.96.0.20', 'service'],
    ['webhook.kube-system.svc', 'service'],
    ['metrics.default.svc.cluster.local', 'service'],
    ['192.168.7.7', 'not_in_node'],
  ]);
  expect(r.refused[0]!.detail).toBe('198.18.2.2 belongs to node edge-b');
  // Nothing the announcement claimed moved: edge-b's address is still edge-b's, the rest nobody's.
  expect(d.nodesFor('198.18.2.2')).toEqual(['edge-b']);
  expect(d.nodesFor('192.168.7.7')).toEqual([]);
  expect(d.nodesFor('10.96.0.20')).toEqual([]);
});

test("a Node object listing another node's address makes it contested (nobody's), and reports it; another node's name stays that node's", () => {
  const seen: [string, string[]][] = [];
  const d = createNodeDirectory({ onContested: (a, n) => seen.push([a, n]) });
  d.setNode('edge-b', ['198.18.2.2']);
  d.setNode('edge-a', ['198.18.1.2', '198.18.2.2', 'edge-b', 'webhook.default.svc']);
  expect(d.ownerOf('198.18.2.2')).toEqual({ contested: ['edge-a', 'edge-b'] });
  expect(d.nodesFor('198.18.2.2')).toEqual([]);
  expect(d.nodesFor('edge-b')).toEqual(['edge-b']);
  expect(d.nodesFor('webhook.default.svc')).toEqual([]);
  expect(seen).toEqual([['198.18.2.2', ['edge-a', 'edge-b']]]);
  expect(d.contested()).toEqual(['198.18.2.2']);
  expect(d.addressesOf('edge-a').sort()).toEqual(['198.18.1.2', 'edge-a']);
  // edge-a's object is corrected: edge-b owns its address again.
  d.setNode('edge-a', ['198.18.1.2']);
  expect(d.nodesFor('198.18.2.2')).toEqual(['edge-b']);
  expect(d.contested()).toEqual([]);
});

test('a Service address is nobody’s even when a Node lists it, and deleting the Service and the Node updates the index', () => {
  const d = createNodeDirectory();
  d.setService('default/api', ['10.96.0.1']);
  d.setNode('n1', ['10.96.0.1', '10.0.0.1']);
  expect(d.nodesFor('10.96.0.1')).toEqual([]);
  d.deleteService('default/api');
  expect(d.nodesFor('10.96.0.1')).toEqual(['n1']);
  d.deleteNode('n1');
  expect(d.nodesFor('10.0.0.1')).toEqual([]);
  expect(d.hasNode('n1')).toBe(false);
});

test('a node named like an IP address gets no special claim on it', () => {
  const d = createNodeDirectory();
  d.setNode('198.18.9.9', ['198.18.9.9']);
  d.setNode('other', ['198.18.9.9']);
  expect(d.ownerOf('198.18.9.9')).toEqual({ contested: ['198.18.9.9', 'other'] });
});

test("an address inside another node's pod CIDR is not the claimant's, even when only its Node object lists it", () => {
  const d = createNodeDirectory();
  d.setNode('cloud-1', ['198.18.0.5'], ['10.244.1.0/24', 'fd10::/64']);
  d.setNode('edge-a', ['198.18.1.2', '10.244.1.17', 'fd10::17', '10.244.2.3'], ['10.244.2.0/24']);
  expect(d.nodesFor('10.244.1.17')).toEqual([]);
  expect(d.nodesFor('fd10::17')).toEqual([]);
  expect(d.nodesFor('10.244.2.3')).toEqual(['edge-a']); // its own pod CIDR
  const r = d.announce('edge-a', ['10.244.1.17']);
  expect(r.refused).toEqual([{ address: '10.244.1.17', reason: 'other_node', detail: "10.244.1.17 is in node cloud-1's pod CIDR" }]);
});
