#!/usr/bin/env bun
/**
 * Writes the CRDs built from the zod schemas to deploy/crds/, or with `--check` fails (exit 1)
 * naming every committed file that differs from what the schemas produce.
 *
 *   bun cloud/api/generate.ts           # rewrite deploy/crds/*.yaml
 *   bun cloud/api/generate.ts --check   # CI: are the committed CRDs current?
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderCrdFiles } from './render.ts';

const dir = join(import.meta.dir, '../../deploy/crds');
const files = renderCrdFiles();
if (process.argv.includes('--check')) {
  const stale = Object.entries(files).filter(([name, text]) => {
    try {
      return readFileSync(join(dir, name), 'utf8') !== text;
    } catch {
      return true;
    }
  });
  for (const [name] of stale) console.error(`deploy/crds/${name} is out of date: run \`bun cloud/api/generate.ts\``);
  process.exit(stale.length ? 1 : 0);
}
for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
console.log(`wrote ${Object.keys(files).map((n) => `deploy/crds/${n}`).join(', ')}`);
