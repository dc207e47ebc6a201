/**
 * What may be bundled into tether-edge. The committed list (scripts/edge-modules.txt) names every
 * npm package and first-party folder that the edge binary contains; the build fails when
 * something else enters, and always fails for modules that must never be there.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';

/** Never in the edge binary: cloud code, the Node-only SQLite driver, client libraries the agent does not use. */
const FORBIDDEN: { pattern: RegExp; why: string }[] = [
  { pattern: /^cloud(\/|$)/, why: 'cloud code belongs to tether-hub' },
  { pattern: /^better-sqlite3$/, why: 'the binary uses bun:sqlite; better-sqlite3 serves the Node bundle only' },
  { pattern: /^@kubernetes\/client-node$/, why: 'the agent speaks to the apiserver itself; the client library is for tether-hub' },
  { pattern: /^test(\/|$)/, why: 'test support is not shipped' },
  { pattern: /^scripts(\/|$)/, why: 'build scripts are not shipped (macros run at build time)' },
];

interface Metafile {
  inputs: Record<string, unknown>;
}

/** Package names ("drizzle-orm", "@scope/pkg") and first-party folders ("edge/store") in a bundle. */
export function modulesOf(root: string, meta: Metafile): string[] {
  const out = new Set<string>();
  for (const input of Object.keys(meta.inputs)) {
    const rel = relative(root, join(root, input)).replace(/\\/g, '/');
    const nm = rel.lastIndexOf('node_modules/');
    if (nm >= 0) {
      const parts = rel.slice(nm + 'node_modules/'.length).split('/');
      out.add(parts[0]?.startsWith('@') ? `${parts[0]}/${parts[1]}` : (parts[0] ?? rel));
    } else if (!rel.startsWith('..') && !rel.includes(':')) {
      const dir = rel.includes('/') ? rel.slice(0, rel.lastIndexOf('/')) : rel;
      out.add(dir);
    }
  }
  return [...out].sort();
}

export function checkEdgeModules(root: string, found: string[], update: boolean): string[] {
  const problems: string[] = [];
  for (const m of found) {
    const bad = FORBIDDEN.find((f) => f.pattern.test(m));
    if (bad) problems.push(`${m} must not be in tether-edge: ${bad.why}`);
  }
  if (problems.length) return problems;
  const listFile = join(root, 'scripts/edge-modules.txt');
  if (update) {
    writeFileSync(listFile, `# Modules bundled into tether-edge (checked by scripts/build.ts; refresh with --update-modules)\n${found.join('\n')}\n`);
    return [];
  }
  const allowed = new Set(
    readFileSync(listFile, 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#')),
  );
  for (const m of found) {
    if (!allowed.has(m)) problems.push(`${m} entered tether-edge but is not in scripts/edge-modules.txt (if intended, rebuild with --update-modules and commit the list)`);
  }
  for (const m of allowed) {
    if (!found.includes(m)) problems.push(`${m} is listed in scripts/edge-modules.txt but no longer bundled (rebuild with --update-modules)`);
  }
  return problems;
}
