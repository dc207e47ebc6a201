/**
 * Every benchmark script prints a markdown section and, with --write, replaces its own section of
 * docs/benchmarks.md (from its "## Title" line to the next "## "), leaving the others as they are.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export function publishSection(title: string, text: string, argv = process.argv): void {
  console.log(text);
  if (!argv.includes('--write')) return;
  const file = join(import.meta.dir, '../../docs/benchmarks.md');
  const cur = existsSync(file) ? readFileSync(file, 'utf8') : '# Benchmarks\n\n';
  const at = cur.indexOf(`## ${title}`);
  const next = at >= 0 ? cur.indexOf('\n## ', at + 1) : -1;
  const updated = at < 0 ? `${cur.trimEnd()}\n\n${text}` : `${cur.slice(0, at)}${text}${next >= 0 ? cur.slice(next + 1) : ''}`;
  writeFileSync(file, updated.endsWith('\n') ? updated : `${updated}\n`);
  console.error(`bench: wrote ${file}`);
}
