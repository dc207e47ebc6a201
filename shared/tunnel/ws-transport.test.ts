import { test } from 'bun:test';
import { runSessionContract } from './session.contract.ts';
import { wsPairs } from '../../test/support/tunnel-pairs.ts';
import { createTunnelTestPki } from '../../test/support/pki.ts';
import { runWsTransportTests } from './ws-transport.contract.ts';

const pki = await createTunnelTestPki('edge-1');
runSessionContract(test, wsPairs());
runSessionContract(test, wsPairs(pki));
runWsTransportTests(test, pki);
