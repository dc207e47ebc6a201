/**
 * Frame codec of one SPDY session: frames <-> bytes, with header blocks compressed through one
 * zlib deflate context (outgoing) and one inflate context (incoming) that live as long as the
 * session, both primed with the SPDY/3 dictionary. Every header block ends with a zlib
 * SYNC_FLUSH, so each frame's compressed bytes are complete on their own while still
 * referring back to earlier blocks of the same direction.
 *
 * Contract: because the contexts are shared, `encode` results must reach the wire in the order
 * `encode` was called, and `decode` must be called in wire order. Both methods queue internally,
 * so calling them in order without awaiting in between is safe.
 */
import zlib from 'node:zlib';
import { ErrorCode, TetherError } from '../../../../shared/errors.ts';
import { spdyDictionary } from './spdy-dictionary.ts';
import {
  decodeFrame,
  encodeFrame,
  encodeHeaderBlock,
  headerBlockOffset,
  type Frame,
  type RawFrame,
} from './spdy-frames.ts';

export interface FrameCodec {
  encode(frame: Frame): Promise<Buffer>;
  decode(raw: RawFrame): Promise<Frame>;
  close(): void;
}

export function createFrameCodec(): FrameCodec {
  const deflate = zlib.createDeflate({ level: zlib.constants.Z_BEST_COMPRESSION, dictionary: spdyDictionary });
  const inflate = zlib.createInflate({ dictionary: spdyDictionary });
  const compress = serialFlush(deflate, 'compress header block');
  const decompress = serialFlush(inflate, 'decompress header block');
  let encoding = Promise.resolve<unknown>(undefined);
  let decoding = Promise.resolve<unknown>(undefined);

  return {
    encode(frame) {
      const hasHeaders = frame.type === 'syn_stream' || frame.type === 'syn_reply' || frame.type === 'headers';
      const next = encoding.then(async () =>
        hasHeaders ? encodeFrame(frame, await compress(encodeHeaderBlock(frame.headers))) : encodeFrame(frame),
      );
      encoding = next.catch(() => undefined);
      return next;
    },
    decode(raw) {
      const offset = raw.control ? headerBlockOffset(raw.controlType) : undefined;
      const next = decoding.then(async () => {
        if (offset === undefined || raw.payload.length < offset) return decodeFrame(raw);
        return decodeFrame(raw, await decompress(raw.payload.subarray(offset)));
      });
      decoding = next.catch(() => undefined);
      return next;
    },
    close() {
      deflate.destroy();
      inflate.destroy();
    },
  };
}

/** Writes input into a long-lived zlib stream and collects what one SYNC_FLUSH yields. */
function serialFlush(stream: zlib.Deflate | zlib.Inflate, step: string): (input: Buffer) => Promise<Buffer> {
  let failure: Error | undefined;
  stream.on('error', (err) => {
    failure = err;
  });
  return (input) =>
    new Promise<Buffer>((resolve, reject) => {
      if (failure) return reject(new TetherError(ErrorCode.BadRequest, `${step}: ${failure.message}`, { cause: failure }));
      const out: Buffer[] = [];
      const onData = (b: Buffer) => out.push(b);
      const onError = (err: Error) => {
        stream.off('data', onData);
        reject(new TetherError(ErrorCode.BadRequest, `${step}: ${err.message}`, { cause: err }));
      };
      stream.on('data', onData);
      stream.once('error', onError);
      stream.write(input);
      stream.flush(zlib.constants.Z_SYNC_FLUSH, () => {
        stream.off('data', onData);
        stream.off('error', onError);
        if (failure) return;
        resolve(Buffer.concat(out));
      });
    });
}
