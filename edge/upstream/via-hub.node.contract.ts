/**
 * Entry point of the Node run of the via-hub contract (the arm32 bundle runs on Node 20):
 *   node_modules/.bin/bun build edge/upstream/via-hub.node.contract.ts --target=node --format=esm --outfile /tmp/via-hub.node.mjs
 *   node --test /tmp/via-hub.node.mjs
 */
import { test } from 'node:test';
import { runViaHubContract } from './via-hub.contract.ts';

runViaHubContract((name, fn) => test(name, { timeout: 20_000 }, fn));
