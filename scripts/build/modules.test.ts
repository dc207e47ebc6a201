import { expect, test } from 'bun:test';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkEdgeModules, modulesOf } from './modules.ts';

const root = mkdtempSync(join(tmpdir(), 'tether-modules-'));
mkdirSync(join(root, 'scripts'));
writeFileSync(join(root, 'scripts/edge-modules.txt'), '# list\nzod\nedge/store\nshared\n');

test('reduces bundle inputs to packages and first-party folders', () => {
  const meta = {
    inputs: {
      'node_modules/zod/v4/core/core.js': {},
      'node_modules/@scope/pkg/index.js': {},
      'edge/store/db.ts': {},
      'shared/log.ts': {},
      'package.json': {},
    },
  };
  expect(modulesOf(root, meta)).toEqual(['@scope/pkg', 'edge/store', 'package.json', 'shared', 'zod']);
});

test('accepts exactly the committed list', () => {
  expect(checkEdgeModules(root, ['edge/store', 'shared', 'zod'], false)).toEqual([]);
});

test('refuses a module that is not on the list, and names the list', () => {
  const p = checkEdgeModules(root, ['edge/store', 'shared', 'zod', 'left-pad'], false);
  expect(p).toHaveLength(1);
  expect(p[0]).toContain('left-pad entered tether-edge but is not in scripts/edge-modules.txt');
});

test('always refuses cloud code, better-sqlite3 and the Kubernetes client, even when updating', () => {
  for (const m of ['cloud', 'cloud/commands', 'better-sqlite3', '@kubernetes/client-node']) {
    const p = checkEdgeModules(root, ['shared', m], true);
    expect(p).toHaveLength(1);
    expect(p[0]).toContain(`${m} must not be in tether-edge`);
  }
});
