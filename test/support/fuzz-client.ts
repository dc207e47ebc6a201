/**
 * Test support for the proxy listener's fuzz suites (edge/proxy/server.fuzz.test.ts,
 * test/proxy-offline.fuzz.test.ts): one raw input on a fresh connection, and the check every answer
 * must pass. Not part of the product.
 */
import { expect } from 'bun:test';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';

/** Who sends an input: the kubelet (its local certificate), a TLS client without one, or raw bytes before TLS. */
export type FuzzSender = 'kubelet' | 'none' | 'noise';

export interface ExchangeOptions {
  port: number;
  caPem: string;
  kubelet: { certPem: string; keyPem: string };
  /** How long an answer may pause before the client gives up (an incomplete request waits, rightly). */
  idleMs?: number;
}

/**
 * Sends `input` on a fresh connection and collects the answer: until the proxy closes, a complete
 * first answer arrived (or a 101), or nothing came for `idleMs`. Resolves with the bytes and the
 * socket error, if any.
 */
export function exchange(o: ExchangeOptions, input: Uint8Array, who: FuzzSender): Promise<{ bytes: Buffer; error?: string }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let error: string | undefined;
    const send = () => void s.write(input);
    const s: Socket | TLSSocket =
      who === 'noise'
        ? netConnect({ host: '127.0.0.1', port: o.port }, send)
        : tlsConnect({ host: '127.0.0.1', port: o.port, ca: o.caPem, ...(who === 'kubelet' ? { cert: o.kubelet.certPem, key: o.kubelet.keyPem } : {}) }, send);
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(idle);
      s.destroy();
      resolve({ bytes: Buffer.concat(chunks), error });
    };
    const idleMs = o.idleMs ?? 500;
    let idle = setTimeout(finish, idleMs);
    s.on('data', (c: Buffer) => {
      chunks.push(c);
      clearTimeout(idle);
      idle = setTimeout(finish, idleMs);
      const all = Buffer.concat(chunks);
      const at = all.indexOf('\r\n\r\n');
      if (at < 0) return;
      const head = all.subarray(0, at).toString('latin1');
      if (/^HTTP\/1\.1 101 /.test(head)) return finish();
      const len = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? NaN);
      if (all.length - at - 4 >= len) finish();
    });
    s.on('error', (e) => {
      error = String(e);
      finish();
    });
    s.on('close', finish);
  });
}

/** Every answer starts with a status line; a refusal (4xx, 5xx) is a Kubernetes Status of its code. */
export function checkAnswer(bytes: Buffer, context: string): void {
  if (bytes.length === 0) return; // closed without an answer: the request never completed
  const text = bytes.toString('latin1');
  expect(text, context).toMatch(/^HTTP\/1\.1 [1-5][0-9]{2} /);
  const code = Number(text.slice(9, 12));
  if (code < 400) return;
  const at = text.indexOf('\r\n\r\n');
  expect(at, `${context}: a complete head`).toBeGreaterThan(0);
  const head = text.slice(0, at);
  const len = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1]);
  let raw = text.slice(at + 4);
  if (Number.isFinite(len)) {
    expect(len, `${context}: Content-Length of ${head.split('\r\n')[0]}`).toBeGreaterThan(0);
    raw = raw.slice(0, len);
  } else if (/\r\ntransfer-encoding: *chunked/i.test(head)) {
    raw = raw.replace(/^[0-9a-f]+\r\n/i, '').replace(/\r\n0\r\n\r\n$/, '').replace(/\r\n$/, '');
  } else {
    throw new Error(`${context}: ${head.split('\r\n')[0]} has neither a Content-Length nor a chunked body`);
  }
  let body: { kind?: string; code?: number } = {};
  try {
    body = JSON.parse(raw);
  } catch {
    throw new Error(`${context}: the body of ${head.split('\r\n')[0]} is not a Status: ${JSON.stringify(text.slice(0, 600))}`);
  }
  expect(body.kind, context).toBe('Status');
  expect(body.code, context).toBe(code);
}
