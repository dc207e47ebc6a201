/**
 * Entry point of the Node run of the store contract: scripts/test.sh bundles this file for
 * Node (better-sqlite3 external) and runs it with `node --test`.
 */
import { test } from 'node:test';
import { openDb } from './db.node.ts';
import { runStoreContract } from './store.contract.ts';

runStoreContract(test, openDb);
