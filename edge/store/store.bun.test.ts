import { test } from 'bun:test';
import { openDb } from './db.bun.ts';
import { runStoreContract } from './store.contract.ts';

runStoreContract(test, openDb);
