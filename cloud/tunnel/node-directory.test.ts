import { expect, test } from 'bun:test';
import { createNodeDirectory } from './node-directory.ts';

test('a node is found by any address from its Node object or its agent, case-insensitively', () => {
  const d = createNodeDirectory();
  d.setNode('n1', ['10.0.0.1', 'N1.example']);
  d.announce('n1', ['192.168.7.2', 'fd00::1']);
  expect(d.nodesFor('10.0.0.1')).toEqual(['n1']);
  expect(d.nodesFor('n1.EXAMPLE')).toEqual(['n1']);
  expect(d.nodesFor('192.168.7.2')).toEqual(['n1']);
  expect(d.nodesFor('[fd00::1]')).toEqual(['n1']);
  expect(d.nodesFor('10.0.0.2')).toEqual([]);
});

test('withdrawing an announcement keeps the Node object addresses; deleting the node keeps the announcement', () => {
  const d = createNodeDirectory();
  d.setNode('n1', ['10.0.0.1']);
  d.announce('n1', ['192.168.7.2', '10.0.0.1']);
  d.withdraw('n1');
  expect(d.nodesFor('192.168.7.2')).toEqual([]);
  expect(d.nodesFor('10.0.0.1')).toEqual(['n1']);
  d.announce('n1', ['192.168.7.2']);
  d.deleteNode('n1');
  expect(d.hasNode('n1')).toBe(false);
  expect(d.nodesFor('10.0.0.1')).toEqual([]);
  expect(d.addressesOf('n1')).toEqual(['192.168.7.2']);
});

test('an updated Node object replaces its old addresses; two nodes may share one', () => {
  const d = createNodeDirectory();
  d.setNode('n1', ['10.0.0.1']);
  d.setNode('n1', ['10.0.0.9']);
  d.setNode('n2', ['10.0.0.9']);
  expect(d.nodesFor('10.0.0.1')).toEqual([]);
  expect(d.nodesFor('10.0.0.9').sort()).toEqual(['n1', 'n2']);
  expect(d.nodeCount).toBe(2);
});
