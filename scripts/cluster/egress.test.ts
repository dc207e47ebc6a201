import { expect, test } from 'bun:test';
import { parse } from 'yaml';
import { isTetherError } from '../../shared/errors.ts';
import { egressSelectorText } from './egress.ts';

const connection = (text: string) => parse(text).egressSelections[0].connection;

test('an https hub gets HTTPConnect over tcp with the TLS files', () => {
  const text = egressSelectorText({ url: 'https://127.0.0.1:8132', caFile: '/ca', certFile: '/c', keyFile: '/k' });
  expect(parse(text)).toMatchObject({ apiVersion: 'apiserver.k8s.io/v1beta1', kind: 'EgressSelectorConfiguration' });
  expect(parse(text).egressSelections[0].name).toBe('cluster');
  expect(connection(text)).toEqual({
    proxyProtocol: 'HTTPConnect',
    transport: { tcp: { url: 'https://127.0.0.1:8132', tlsConfig: { caBundle: '/ca', clientCert: '/c', clientKey: '/k' } } },
  });
});

test('an http hub gets no tlsConfig, which the apiserver would refuse', () => {
  expect(connection(egressSelectorText({ url: 'http://127.0.0.1:8132', certFile: '/c', keyFile: '/k' })).transport).toEqual({
    tcp: { url: 'http://127.0.0.1:8132' },
  });
});

test('a unix socket hub', () => {
  expect(connection(egressSelectorText({ udsName: '/run/hub.sock' })).transport).toEqual({ uds: { udsName: '/run/hub.sock' } });
});

test('an https hub without a client certificate, or another scheme, is refused', () => {
  expect(() => egressSelectorText({ url: 'https://127.0.0.1:1' })).toThrow(/needs a client certificate/);
  let err: unknown;
  try {
    egressSelectorText({ url: 'tcp://127.0.0.1:1' });
  } catch (e) {
    err = e;
  }
  expect(isTetherError(err, 'E_BAD_CONFIG')).toBe(true);
});
