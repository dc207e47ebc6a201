/**
 * Entry point of the Node run of the tunnel contracts: bundle this file for Node and run it with
 * `node --test` (see README.md). The same suites run under Bun in session.test.ts and
 * ws-transport.test.ts.
 */
import { test } from 'node:test';
import { runCompressContract } from './compress.contract.ts';
import { memoryPairs, wsPairs } from '../../test/support/tunnel-pairs.ts';
import { createTunnelTestPki } from '../../test/support/pki.ts';
import { runSessionContract } from './session.contract.ts';
import { runWsTransportTests } from './ws-transport.contract.ts';

const pki = await createTunnelTestPki('edge-1');
runSessionContract(test, memoryPairs());
runSessionContract(test, wsPairs());
runSessionContract(test, wsPairs(pki));
runWsTransportTests(test, pki);
runCompressContract(test, memoryPairs());
runCompressContract(test, wsPairs(pki));
