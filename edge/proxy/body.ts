/** Reading a request body with a size bound (the apiserver's own limit is 3 MiB for most requests). */
import type { IncomingMessage } from 'node:http';
import { ErrorCode, TetherError } from '../../shared/errors.ts';

export const MAX_BODY = 3 * 1024 * 1024;

export function readBody(req: IncomingMessage, max = MAX_BODY): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > max) {
        reject(new TetherError(ErrorCode.BadRequest, `read request body: larger than ${max} bytes`));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', (e) => reject(new TetherError(ErrorCode.BadRequest, `read request body: ${e.message}`, { cause: e })));
  });
}
