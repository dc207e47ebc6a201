/**
 * Entry point of the Node run of the tunnel contracts: bundle this file for Node and run it with
 * `node --test` (see README.md). The same suites run under Bun in session.test.ts and
 * ws-transport.test.ts.
 */
import { test } from 'node:test';
import { runCompressContract } from './compress.contract.ts';
import { memoryPairs, wsPairs } from './_test-pairs.ts';
import { makeTestPki } from './_test-pki.ts';
import { runSessionContract } from './session.contract.ts';
import { runWsTransportTests } from './ws-transport.contract.ts';

const pki = makeTestPki('edge-1');
runSessionContract(test, memoryPairs());
runSessionContract(test, wsPairs());
runSessionContract(test, wsPairs(pki));
runWsTransportTests(test, pki);
runCompressContract(test, memoryPairs());
runCompressContract(test, wsPairs(pki));
