/**
 * Helpers for the two citty entry points: the flags a config schema accepts, loading the config
 * from file + environment + flags, and turning a TetherError into one readable line and exit code 1
 * instead of a stack trace.
 */
import type { ArgsDef } from 'citty';
import type { z } from 'zod';
import { flagDescriptions, loadConfig } from './config.ts';
import { TetherError, messageOf } from './errors.ts';

/** citty string args for every leaf of the schema, plus --config. */
export function configArgs(schema: z.ZodType): ArgsDef {
  const args: ArgsDef = {
    config: { type: 'string', description: 'Configuration file (YAML or JSON)', alias: 'c' },
  };
  for (const f of flagDescriptions(schema)) args[f.name] = { type: 'string', description: f.description };
  return args;
}

export function configFromArgs<S extends z.ZodType>(
  schema: S,
  args: Record<string, unknown>,
  env: Record<string, string | undefined>,
  envPrefix: string,
): z.infer<S> {
  const flags: Record<string, unknown> = {};
  for (const f of flagDescriptions(schema)) if (args[f.name] !== undefined) flags[f.name] = args[f.name];
  const file = typeof args.config === 'string' ? args.config : env[`${envPrefix}CONFIG`];
  return loadConfig(schema, { file, env, envPrefix, flags });
}

/** Runs a command body; a TetherError (or any error) becomes "<binary>: <message>" and exit code 1. */
export async function guard(binary: string, body: () => Promise<void> | void): Promise<void> {
  try {
    await body();
  } catch (e) {
    const msg = e instanceof TetherError ? `${e.message}` : `unexpected error: ${messageOf(e)}`;
    process.stderr.write(`${binary}: ${msg}\n`);
    process.exit(1);
  }
}
