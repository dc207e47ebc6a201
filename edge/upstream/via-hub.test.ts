/** The via-hub contract (via-hub.contract.ts) under Bun; via-hub.node.contract.ts runs it under Node 20. */
import { test } from 'bun:test';
import { runViaHubContract } from './via-hub.contract.ts';

runViaHubContract((name, fn) => test(name, fn, 20_000));
