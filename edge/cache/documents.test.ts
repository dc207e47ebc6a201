import { describe, expect, test } from 'bun:test';
import { documentKeys, listKindKey } from './documents.ts';

describe('document keys', () => {
  test('the list kind key is the one stores already hold (a store written by an earlier agent still answers offline lists as <Kind>List)', () => {
    expect(listKindKey('v1/pods')).toBe('listkind|v1/pods');
    expect(listKindKey('storage.k8s.io/v1/csidrivers')).toBe('listkind|storage.k8s.io/v1/csidrivers');
  });

  test('an Accept asking for aggregated discovery tries its own variant, then plain JSON when accepted', () => {
    const accept = 'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json';
    expect(documentKeys('/apis', accept)).toEqual(['/apis|application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList', '/apis|application/json']);
    expect(documentKeys('/openapi/v3', 'application/com.github.proto-openapi.spec.v3@v1.0+protobuf')).toEqual(['/openapi/v3|application/com.github.proto-openapi.spec.v3@v1.0+protobuf']);
  });
});
