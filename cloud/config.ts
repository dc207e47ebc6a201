/**
 * tether-hub's configuration schema. Every field has a default and a description; the entry point
 * fills it from a file (--config), TETHER_HUB_* environment variables and flags.
 */
import { z } from 'zod';

const hostPort = z
  .string()
  .regex(/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}$/, 'expected host:port, e.g. 0.0.0.0:8443');

export const hubConfigSchema = z.strictObject({
  listen: hostPort.default('0.0.0.0:8443').describe('Address where edge agents connect (wss)'),
  connectListen: hostPort.default('127.0.0.1:8132').describe("HTTP CONNECT endpoint for kube-apiserver's egress"),
  adminListen: hostPort.default('127.0.0.1:8267').describe('Address of /healthz, /readyz and /metrics'),
  kubeconfig: z.string().optional().describe('Kubeconfig of the cluster (default: in-cluster)'),
  logLevel: z.enum(['debug', 'info', 'warn', 'error']).default('info').describe('Lowest log level written'),
  logFormat: z.enum(['json', 'text']).default('json').describe('Log line format'),
});

export type HubConfig = z.infer<typeof hubConfigSchema>;
export const HUB_ENV_PREFIX = 'TETHER_HUB_';
