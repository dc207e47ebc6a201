import { test } from 'bun:test';
import { runSessionContract } from './session.contract.ts';
import { wsPairs } from './_test-pairs.ts';
import { makeTestPki } from './_test-pki.ts';
import { runWsTransportTests } from './ws-transport.contract.ts';

const pki = makeTestPki('edge-1');
runSessionContract(test, wsPairs());
runSessionContract(test, wsPairs(pki));
runWsTransportTests(test, pki);
