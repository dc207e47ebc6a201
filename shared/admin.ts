/**
 * The admin endpoints both binaries serve: /healthz (the process is alive), /readyz (every named
 * check passes; the failing ones are listed), /metrics (Prometheus text).
 */
import { Hono } from 'hono';
import type { Registry } from './metrics.ts';

/** A readiness check returns null when fine, or a short reason. */
export type ReadyCheck = () => string | null;

export function createAdminApp(opts: { registry: Registry; checks: Record<string, ReadyCheck> }): Hono {
  const app = new Hono();
  app.get('/healthz', (c) => c.text('ok\n'));
  app.get('/readyz', (c) => {
    const lines: string[] = [];
    let ok = true;
    for (const [name, check] of Object.entries(opts.checks)) {
      const problem = check();
      if (problem) ok = false;
      lines.push(problem ? `[-]${name} failed: ${problem}` : `[+]${name} ok`);
    }
    lines.push(ok ? 'readyz check passed' : 'readyz check failed');
    return c.text(lines.join('\n') + '\n', ok ? 200 : 503);
  });
  app.get('/metrics', (c) =>
    c.body(opts.registry.render(), 200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }),
  );
  return app;
}
