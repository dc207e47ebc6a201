import { describe, expect, test } from 'bun:test';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { flagDescriptions, loadConfig } from './config.ts';
import { ErrorCode, isTetherError } from './errors.ts';

const schema = z.strictObject({
  listen: z.string().default('127.0.0.1:1').describe('listen address'),
  servers: z.array(z.string()).default([]).describe('servers'),
  ports: z.array(z.number().int()).default([]).describe('ports'),
  retries: z.number().int().default(3).describe('retries'),
  verbose: z.boolean().default(false).describe('verbose'),
  store: z.strictObject({ dir: z.string().default('/var/lib/x').describe('dir') }).prefault({}),
});

const dir = mkdtempSync(join(tmpdir(), 'tether-config-'));
const file = (name: string, text: string) => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};

function configError(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(isTetherError(e, ErrorCode.BadConfig)).toBe(true);
    return (e as Error).message;
  }
  throw new Error('expected a configuration error');
}

describe('loadConfig', () => {
  test('applies defaults when nothing is given', () => {
    expect(loadConfig(schema, { envPrefix: 'T_' })).toEqual({
      listen: '127.0.0.1:1',
      servers: [],
      ports: [],
      retries: 3,
      verbose: false,
      store: { dir: '/var/lib/x' },
    });
  });

  test('file < environment < flags, nested keys included', () => {
    const f = file('c.yaml', 'listen: 0.0.0.0:9\nretries: 5\nstore:\n  dir: /from/file\n');
    const c = loadConfig(schema, {
      file: f,
      envPrefix: 'T_',
      env: { T_RETRIES: '7', T_SERVERS: 'https://a, https://b', T_STORE__DIR: '/from/env', T_PORTS: '9100, 9200' },
      flags: { 'store.dir': '/from/flag', verbose: 'true' },
    });
    expect(c).toEqual({
      listen: '0.0.0.0:9',
      servers: ['https://a', 'https://b'],
      ports: [9100, 9200],
      retries: 7,
      verbose: true,
      store: { dir: '/from/flag' },
    });
  });

  test('reads JSON files too', () => {
    const f = file('c.json', JSON.stringify({ servers: ['https://x'] }));
    expect(loadConfig(schema, { file: f, envPrefix: 'T_' }).servers).toEqual(['https://x']);
  });

  test('an unknown key is refused with its name', () => {
    const f = file('u.yaml', 'listen: a:1\nlisten_addr: b:2\n');
    expect(configError(() => loadConfig(schema, { file: f, envPrefix: 'T_' }))).toContain('Unrecognized key: "listen_addr"');
  });

  test('a wrong type names the field and what was expected', () => {
    const msg = configError(() => loadConfig(schema, { envPrefix: 'T_', env: { T_RETRIES: 'many' } }));
    expect(msg).toContain('retries');
    expect(msg).toContain('expected number');
  });

  test('a missing file and a YAML syntax error say which file', () => {
    expect(configError(() => loadConfig(schema, { file: join(dir, 'none.yaml'), envPrefix: 'T_' }))).toContain(
      `read config file ${join(dir, 'none.yaml')}`,
    );
    const f = file('broken.yaml', 'listen: [\n');
    expect(configError(() => loadConfig(schema, { file: f, envPrefix: 'T_' }))).toContain(`parse config file ${f}`);
    const g = file('list.yaml', '- a\n- b\n');
    expect(configError(() => loadConfig(schema, { file: g, envPrefix: 'T_' }))).toContain('expected a mapping');
  });

  test('lists every flag with its description', () => {
    expect(flagDescriptions(schema)).toEqual([
      { name: 'listen', description: 'listen address' },
      { name: 'servers', description: 'servers' },
      { name: 'ports', description: 'ports' },
      { name: 'retries', description: 'retries' },
      { name: 'verbose', description: 'verbose' },
      { name: 'store.dir', description: 'dir' },
    ]);
  });
});
