/**
 * Reading a request body with a size bound (the apiserver's own limit is 3 MiB for most requests).
 * A body over the bound is refused with 413 (status.ts `bodyTooLarge`): at once when its
 * Content-Length says so, otherwise when the bound is crossed; the rest is read and dropped rather
 * than the connection being reset, so that the client reads the Status.
 */
import type { IncomingMessage } from 'node:http';
import { ErrorCode, TetherError } from '../../shared/errors.ts';
import { bodyTooLarge } from './error-status.ts';

export const MAX_BODY = 3 * 1024 * 1024;

export function readBody(req: IncomingMessage, max = MAX_BODY): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > max) {
      req.resume(); // drop it
      return reject(bodyTooLarge(max));
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (c: Buffer) => {
      if (over) return;
      size += c.length;
      if (size > max) {
        over = true;
        chunks.length = 0;
        reject(bodyTooLarge(max));
        return;
      }
      chunks.push(c);
    });
    let ended = false;
    req.on('end', () => {
      ended = true;
      resolve(Buffer.concat(chunks));
    });
    // The client went away before the body was complete: nothing to answer, and no promise left hanging.
    req.on('close', () => {
      if (!ended) reject(new TetherError(ErrorCode.BadRequest, 'read request body: the client closed the connection before the body was complete'));
    });
    req.on('error', (e) => reject(new TetherError(ErrorCode.BadRequest, `read request body: ${e.message}`, { cause: e })));
  });
}
