import { expect, test } from 'bun:test';
import { PassThrough, Duplex } from 'node:stream';
import { pipeBoth } from './pipe.ts';

/** Two in-memory sockets joined like a TCP connection: what one side writes the other reads. */
function socketPair(): [Duplex, Duplex] {
  const ab = new PassThrough();
  const ba = new PassThrough();
  const side = (input: PassThrough, output: PassThrough) =>
    new Duplex({
      read() {
        input.once('readable', () => {
          let c;
          while ((c = input.read()) !== null) this.push(c);
        });
        let c;
        while ((c = input.read()) !== null) this.push(c);
      },
      write(chunk, _enc, cb) {
        output.write(chunk, cb);
      },
      final(cb) {
        output.end();
        cb();
      },
    });
  const a = side(ba, ab);
  const b = side(ab, ba);
  ab.on('end', () => b.push(null));
  ba.on('end', () => a.push(null));
  return [a, b];
}

test('bytes go both ways, are counted per direction, and ends travel (half-close) until both sides close', async () => {
  const [client, clientFar] = socketPair();
  const [target, targetFar] = socketPair();
  const counted = { up: 0, down: 0 };
  const { done } = pipeBoth(clientFar, targetFar, { onBytes: (d, n) => (counted[d] += n) });
  const atTarget: Buffer[] = [];
  target.on('data', (c: Buffer) => atTarget.push(c));
  const atClient: Buffer[] = [];
  client.on('data', (c: Buffer) => atClient.push(c));
  client.write('request');
  client.end();
  await new Promise((r) => target.once('end', r));
  target.write('response!');
  target.end();
  await new Promise((r) => client.once('end', r));
  expect(Buffer.concat(atTarget).toString()).toBe('request');
  expect(Buffer.concat(atClient).toString()).toBe('response!');
  expect(counted).toEqual({ up: 7, down: 9 });
  clientFar.destroy();
  targetFar.destroy();
  await done;
});

test('an error on one side destroys the other at once', async () => {
  const a = new PassThrough();
  const b = new PassThrough();
  const { done } = pipeBoth(a, b);
  a.destroy(new Error('reset'));
  await done;
  expect(b.destroyed).toBe(true);
});

test('a side that never finishes after the other closed is destroyed after the grace period', async () => {
  const a = new PassThrough();
  const stuck = new Duplex({ read() {}, write(_c, _e, _cb) {} }); // accepts nothing, never finishes
  const { done } = pipeBoth(a, stuck, { graceMs: 30 });
  a.write('x');
  a.destroy();
  await done;
  expect(stuck.destroyed).toBe(true);
});
