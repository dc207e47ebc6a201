/** The kubelet's TokenRequests: kept online through the recorder's tap, answered the same offline while valid. */
import { beforeEach, describe, expect, test } from 'bun:test';
import { createMemoryLogger } from '../../shared/log.ts';
import { type ResourceRequestInfo, parseRequest } from '../../shared/kube/index.ts';
import { openDb } from '../store/db.bun.ts';
import { type Store, createStore } from '../store/index.ts';
import { createRecorder } from './recorder.ts';
import { replayToken } from './tokens.ts';

const PATH = '/api/v1/namespaces/default/serviceaccounts/default/token';
const kubeletCreate = (path = PATH) => {
  const info = parseRequest('POST', path, { 'content-type': 'application/vnd.kubernetes.protobuf' }) as ResourceRequestInfo;
  info.component = 'kubelet';
  return info;
};
/** A token as the apiserver issues it: a JWT whose payload carries `exp`. */
const jwt = (expSeconds: number) => `h.${Buffer.from(JSON.stringify({ exp: expSeconds, sub: 'system:serviceaccount:default:default' })).toString('base64url')}.sig`;
const answer = (expSeconds: number) =>
  JSON.stringify({ kind: 'TokenRequest', apiVersion: 'authentication.k8s.io/v1', status: { token: jwt(expSeconds), expirationTimestamp: new Date(expSeconds * 1000).toISOString() } });
const body = (podUid: string) => Buffer.from(`k8s\0protobuf TokenRequest bound to pod ${podUid}\xff`, 'latin1');

let store: Store;
let recorder: ReturnType<typeof createRecorder>;
const errors: unknown[] = [];
beforeEach(() => {
  store = createStore(openDb({ path: ':memory:' }));
  errors.length = 0;
  recorder = createRecorder({ store, log: createMemoryLogger('error'), onStoreError: (e) => errors.push(e), onStoreOk: () => {}, onDecodeError: () => {} });
});

/** The apiserver answering a TokenRequest online, as the recorder's tap sees it. */
function answered(info: ResourceRequestInfo, reqBody: Buffer, status: number, text: string, cached = true) {
  const tap = recorder.tapFor(info, 'application/json', cached, reqBody);
  if (!tap) return false;
  if (tap.head(status, { 'content-type': 'application/json' })) {
    tap.chunk(Buffer.from(text));
    tap.end(true);
  }
  return true;
}

describe('offline service-account tokens', () => {
  const now = Date.parse('2026-12-04T02:00:00Z');
  const inAnHour = now / 1000 + 3600;

  test('the same request gets the same answer offline while the token is valid; its exp claim decides, not the status', () => {
    const a = answer(inAnHour);
    expect(answered(kubeletCreate(), body('uid-1'), 201, a)).toBe(true);
    const got = replayToken(store, kubeletCreate(), body('uid-1'), now);
    expect(got?.status).toBe(201);
    expect(got?.raw).toBe(a);
    expect(got?.warning).toContain('answered from the node');
    // A minute before exp it is no longer handed out; the status's own timestamp is not what counts.
    expect(replayToken(store, kubeletCreate(), body('uid-1'), inAnHour * 1000 - 30_000)).toBeUndefined();
    const extended = JSON.stringify({ ...JSON.parse(answer(inAnHour + 365 * 86400)), status: { token: jwt(inAnHour + 365 * 86400), expirationTimestamp: new Date(now + 3600_000).toISOString() } });
    answered(kubeletCreate(), body('uid-2'), 201, extended);
    expect(replayToken(store, kubeletCreate(), body('uid-2'), now + 2 * 3600_000)?.raw).toBe(extended);
  });

  test('another pod, another service account, a refused or non-JSON answer: nothing to hand out', () => {
    answered(kubeletCreate(), body('uid-1'), 201, answer(inAnHour));
    expect(replayToken(store, kubeletCreate(), body('uid-other'), now)).toBeUndefined();
    expect(replayToken(store, kubeletCreate('/api/v1/namespaces/default/serviceaccounts/other/token'), body('uid-1'), now)).toBeUndefined();
    answered(kubeletCreate(), body('uid-3'), 403, answer(inAnHour));
    expect(replayToken(store, kubeletCreate(), body('uid-3'), now)).toBeUndefined();
    answered(kubeletCreate(), body('uid-4'), 201, 'not json');
    expect(replayToken(store, kubeletCreate(), body('uid-4'), now)).toBeUndefined();
    expect(errors).toEqual([]);
  });

  test('an uncached client\'s TokenRequests are not kept', () => {
    expect(answered(kubeletCreate(), body('uid-5'), 201, answer(inAnHour), false)).toBe(false);
    expect(replayToken(store, kubeletCreate(), body('uid-5'), now)).toBeUndefined();
  });
});
