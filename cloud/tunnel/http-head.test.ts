import { describe, expect, test } from 'bun:test';
import { PassThrough } from 'node:stream';
import { ErrorCode, isTetherError } from '../../shared/errors.ts';
import { parseAuthority, parseHead, parseStatus, readRequestHead, refuse, statusLine } from './http-head.ts';

describe('readRequestHead', () => {
  test('reads a head that arrives in pieces and keeps the bytes after it', async () => {
    const s = new PassThrough();
    const head = readRequestHead(s);
    s.write('CONNECT 10.0.0.1:10250 HTT');
    s.write('P/1.1\r\nHost: 10.0.0.1:10250\r\nProxy-Authorization: Bearer t\r\n\r\n\x16\x03\x01');
    const h = await head;
    expect(h.method).toBe('CONNECT');
    expect(h.target).toBe('10.0.0.1:10250');
    expect(h.headers).toEqual({ host: '10.0.0.1:10250', 'proxy-authorization': 'Bearer t' });
    expect([...h.rest]).toEqual([0x16, 0x03, 0x01]);
  });

  test('refuses a head longer than the limit', async () => {
    const s = new PassThrough();
    const head = readRequestHead(s, { maxBytes: 64 });
    s.write('GET / HTTP/1.1\r\n' + 'X-Long: ' + 'a'.repeat(100));
    const e = await head.catch((x: unknown) => x);
    expect(isTetherError(e, ErrorCode.BadRequest)).toBe(true);
    expect(String(e)).toContain('longer than 64 bytes');
  });

  test('refuses a head that does not complete in time, and one cut short', async () => {
    const late = readRequestHead(new PassThrough(), { timeoutMs: 20 });
    expect(String(await late.catch((e: unknown) => e))).toContain('nothing complete within 20 ms');
    const s = new PassThrough();
    const cut = readRequestHead(s);
    s.end('CONNECT a:1 HTTP/1.1\r\n');
    expect(String(await cut.catch((e: unknown) => e))).toContain('the peer closed the connection');
  });
});

describe('parsing', () => {
  test('repeated headers are joined; malformed lines are refused', () => {
    expect(parseHead('GET http://a/ HTTP/1.1\r\nA: 1\r\na: 2').headers).toEqual({ a: '1, 2' });
    expect(() => parseHead('GET / HTTP/2.0')).toThrow('bad request line');
    expect(() => parseHead('GET / HTTP/1.1\r\n folded')).toThrow('bad header line');
    expect(() => parseHead('GET / HTTP/1.1\r\nnocolon')).toThrow('bad header line');
  });

  test('authorities: names, IPv4, bracketed IPv6; bad ports and shapes are undefined', () => {
    expect(parseAuthority('node-1.example:10250')).toEqual({ host: 'node-1.example', port: 10250 });
    expect(parseAuthority('10.0.0.1:9100')).toEqual({ host: '10.0.0.1', port: 9100 });
    expect(parseAuthority('[fd00::1]:10250')).toEqual({ host: 'fd00::1', port: 10250 });
    for (const bad of ['10.0.0.1', '10.0.0.1:0', '10.0.0.1:70000', 'a b:1', 'fd00::1:10250', '']) expect(parseAuthority(bad)).toBeUndefined();
  });

  test('status lines carry the reason without control characters; parseStatus reads them back', () => {
    expect(statusLine(502, 'dial\r\nInjected: yes')).toBe('HTTP/1.1 502 dial Injected: yes');
    expect(statusLine(403, '')).toBe('HTTP/1.1 403 Forbidden');
    expect(parseStatus('HTTP/1.1 403 node n1 refuses 10.0.0.1:22\r\nA: b')).toEqual({ code: 403, reason: 'node n1 refuses 10.0.0.1:22' });
    expect(parseStatus('SSH-2.0')).toBeUndefined();
  });

  test('refuse writes one response with the reason in the status line and the body, then ends', async () => {
    const s = new PassThrough();
    refuse(s, 503, 'node n1 has no tunnel connected');
    const text = (await s.toArray()).map(String).join('');
    expect(text).toBe('HTTP/1.1 503 node n1 has no tunnel connected\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 32\r\nConnection: close\r\n\r\nnode n1 has no tunnel connected\n');
  });
});
