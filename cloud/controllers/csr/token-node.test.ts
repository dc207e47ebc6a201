import { describe, expect, test } from 'bun:test';
import { MAX_TOKEN_NODE_NAME, tokenNodeGroup, tokenNodeNameProblem, tokenNodesOf } from './token-node.ts';

/** The apiserver's pattern for bootstrap token groups (k8s.io/cluster-bootstrap token/api BootstrapGroupPattern). */
const APISERVER_GROUP_PATTERN = /^system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]$/;

describe('binding a bootstrap token to a node name', () => {
  test('groups for valid node names, up to the longest, match the pattern the apiserver accepts', () => {
    const longest = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(52)}`;
    expect(longest.length).toBe(MAX_TOKEN_NODE_NAME);
    expect(MAX_TOKEN_NODE_NAME).toBe(244);
    for (const name of ['edge-1', 'a', 'edge-1.shop-7.example.com', '0-9', longest]) {
      expect(tokenNodeNameProblem(name)).toBeUndefined();
      expect(tokenNodeGroup(name)).toMatch(APISERVER_GROUP_PATTERN);
      expect(tokenNodesOf(['system:bootstrappers', tokenNodeGroup(name)])).toEqual([name]);
    }
  });
  test('names that are not node names, or too long for a group, are refused with a reason', () => {
    expect(tokenNodeNameProblem('Edge-1')).toContain('is not a valid node name');
    expect(tokenNodeNameProblem('edge_1')).toContain('is not a valid node name');
    expect(tokenNodeNameProblem('-edge')).toContain('is not a valid node name');
    expect(tokenNodeNameProblem('edge..1')).toContain('is not a valid node name');
    expect(tokenNodeNameProblem('')).toContain('is not a valid node name');
    expect(tokenNodeNameProblem('a'.repeat(245))).toContain('at most 244');
  });
  test('other groups bind nothing', () => {
    expect(tokenNodesOf(['system:bootstrappers', 'system:bootstrappers:kubeadm:default-node-token', 'system:bootstrappers:tether', 'system:authenticated'])).toEqual([]);
  });
});
