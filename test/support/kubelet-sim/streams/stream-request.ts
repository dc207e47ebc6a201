/**
 * Parses the kubelet streaming paths kube-apiserver calls (pkg/registry/core/pod/strategy.go):
 *   /exec/<ns>/<pod>[/<uid>]/<container>?command=..&command=..&input=1&output=1&error=1&tty=1
 *   /attach/<ns>/<pod>[/<uid>]/<container>?input=1&output=1&error=1&tty=1
 *   /portForward/<ns>/<pod>[/<uid>][?port=80,443]
 * The stream flags are the kubelet's names (k8s.io/api core/v1 ExecStdinParam "input",
 * ExecStdoutParam "output", ExecStderrParam "error", ExecTTYParam "tty"), not the pod exec API's
 * stdin/stdout/stderr. They count only when exactly "1", as in the kubelet; tty drops stderr (a
 * terminal has one output).
 */
import type { ContainerTarget, PodTarget, StreamOptions } from './types.ts';

export type StreamRequest =
  | { kind: 'exec'; target: ContainerTarget; command: string[]; streams: StreamOptions }
  | { kind: 'attach'; target: ContainerTarget; streams: StreamOptions }
  | { kind: 'portForward'; target: PodTarget; ports: number[] };

export type ParsedStreamRequest =
  | { ok: true; request: StreamRequest }
  | { ok: false; status: number; message: string };

/** Returns undefined for paths that are not streaming endpoints. */
export function parseStreamRequest(rawUrl: string | undefined): ParsedStreamRequest | undefined {
  const url = new URL(rawUrl ?? '/', 'http://kubelet');
  const parts = url.pathname.split('/').slice(1);
  const kind = parts[0];
  let segments: string[];
  try {
    segments = parts.slice(1).map((s) => decodeURIComponent(s));
  } catch {
    return { ok: false, status: 400, message: 'malformed path' };
  }
  if (segments.some((s) => s === '')) return kind === 'exec' || kind === 'attach' || kind === 'portForward' ? notFound() : undefined;

  if (kind === 'portForward') {
    if (segments.length !== 2 && segments.length !== 3) return notFound();
    const [namespace = '', pod = ''] = segments;
    const ports: number[] = [];
    for (const value of url.searchParams.getAll('port').flatMap((p) => p.split(','))) {
      const port = Number(value.trim());
      if (!Number.isInteger(port) || port < 1 || port > 65535) return { ok: false, status: 400, message: `invalid port ${JSON.stringify(value)}` };
      ports.push(port);
    }
    return { ok: true, request: { kind, target: { namespace, pod }, ports } };
  }

  if (kind !== 'exec' && kind !== 'attach') return undefined;
  if (segments.length !== 3 && segments.length !== 4) return notFound();
  const namespace = segments[0] ?? '';
  const pod = segments[1] ?? '';
  const container = segments[segments.length - 1] ?? '';
  const flag = (name: string) => url.searchParams.get(name) === '1';
  const tty = flag('tty');
  const streams: StreamOptions = { stdin: flag('input'), stdout: flag('output'), stderr: flag('error') && !tty, tty };
  if (!streams.stdin && !streams.stdout && !streams.stderr) {
    return { ok: false, status: 400, message: 'you must specify at least 1 of stdin, stdout, stderr' };
  }
  const target = { namespace, pod, container };
  if (kind === 'attach') return { ok: true, request: { kind, target, streams } };
  const command = url.searchParams.getAll('command');
  if (command.length === 0) return { ok: false, status: 400, message: 'you must specify a command' };
  return { ok: true, request: { kind, target, command, streams } };
}

function notFound(): ParsedStreamRequest {
  return { ok: false, status: 404, message: '404 page not found' };
}
