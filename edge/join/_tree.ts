/**
 * Test support: a listing of a directory tree with each entry's type, mode and (for files) the
 * SHA-256 of its content and its mtime, to show that join + reset leave a root exactly as it was.
 */
import { createHash } from 'node:crypto';
import { lstatSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';

export function treeSnapshot(root: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    const abs = join(root, rel);
    const st = lstatSync(abs);
    const mode = (st.mode & 0o7777).toString(8).padStart(4, '0');
    if (st.isDirectory()) {
      out.push(`d ${mode} ${rel || '/'}`);
      for (const name of readdirSync(abs).sort()) walk(`${rel}/${name}`);
    } else if (st.isSymbolicLink()) {
      out.push(`l ${rel} -> ${readlinkSync(abs)}`);
    } else {
      const sha = createHash('sha256').update(readFileSync(abs)).digest('hex');
      out.push(`f ${mode} ${rel} ${sha} ${Math.floor(st.mtimeMs)}`);
    }
  };
  walk('');
  return out;
}
