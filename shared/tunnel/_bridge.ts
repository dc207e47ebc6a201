/**
 * The accepting side of OPEN: join the stream to the connection `onOpen` dialed. Bytes flow with
 * pipe() both ways (so backpressure reaches the peer as withheld credit); the destination's EOF
 * becomes our FIN and the peer's FIN becomes the destination's EOF. An error on either side
 * destroys the other: a destination error resets the stream with its message as the reason.
 * Dial destinations with `allowHalfOpen: true` to keep half-close.
 */
import type { Duplex } from 'node:stream';
import { messageOf } from '../errors.ts';
import type { Logger } from '../log.ts';

export function bridge(stream: Duplex, socket: Duplex, log: Logger, id: number): void {
  let socketEnded = false;
  socket.on('end', () => (socketEnded = true));
  socket.on('error', (e) => {
    log.debug('tunnel stream destination error', { stream: id, error: messageOf(e) });
    stream.destroy(new Error(`destination: ${messageOf(e)}`));
  });
  socket.on('close', () => {
    if (stream.destroyed) return;
    const gone = () => {
      if (!stream.destroyed && !stream.readableEnded) stream.destroy(new Error('destination closed the connection'));
    };
    // After a clean EOF our FIN goes out once the data before it has been sent.
    if (!socketEnded) gone();
    else if (stream.writableFinished) gone();
    else stream.once('finish', gone);
  });
  stream.on('error', () => socket.destroy());
  socket.pipe(stream);
  stream.pipe(socket);
}
