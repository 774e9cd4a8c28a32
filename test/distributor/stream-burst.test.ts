import http2 from 'node:http2';
import { afterEach, describe, expect, it } from 'vitest';
import { createDistributorServer } from '../../src/distributor/distributor-server.js';
import { WatchRequest } from '../../src/gen/distributor.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A gRPC message frame: the flag byte, the length, the bytes. */
const frame = (message: Uint8Array): Buffer => {
  const header = Buffer.alloc(5);
  header.writeUInt32BE(message.length, 1);
  return Buffer.concat([header, message]);
};

describe('a burst of streams on one connection', () => {
  it('is ended whole by a stop, the streams still waiting to be set up included, without waiting out the grace', async () => {
    const distributor = createDistributorServer();
    const port = await distributor.listen('127.0.0.1', 0);
    let stopped = false;
    cleanups.push(() => stopped || distributor.stop(100));
    const client = http2.connect(`http://127.0.0.1:${port}`);
    client.on('error', () => {});
    cleanups.push(() => client.destroy());
    await new Promise((resolve) => client.once('remoteSettings', resolve));

    // Watch streams of the first contract, all opened at once: more than a slice of setup.
    const watch = frame(WatchRequest.encode(WatchRequest.create()).finish());
    const ended = Array.from({ length: 1_000 }, () => {
      const stream = client.request({
        ':method': 'POST',
        ':path': '/shop.v1.DistributorService/Watch',
        'content-type': 'application/grpc',
        te: 'trailers',
      });
      stream.on('error', () => {});
      stream.end(watch);
      stream.resume();
      const outcome = new Promise<string>((resolve) => {
        stream.on('trailers', (trailers) => resolve(`grpc-status ${trailers['grpc-status']}`));
        stream.on('close', () => resolve(`reset ${stream.rstCode}`));
      });
      return { stream, outcome };
    });
    // Stopped as soon as the first watcher has its list, while most streams still wait.
    await new Promise((resolve) => ended[0]!.stream.once('data', resolve));
    const started = performance.now();
    await distributor.stop(5_000);
    stopped = true;
    const stopMs = performance.now() - started;

    const outcomes = await Promise.all(ended.map(({ outcome }) => outcome));
    // Ended as shutting down (UNAVAILABLE), or refused before being processed: nothing left open.
    const counts = new Map<string, number>();
    for (const outcome of outcomes) counts.set(outcome, (counts.get(outcome) ?? 0) + 1);
    expect([...counts.keys()].sort()).toEqual(
      expect.arrayContaining([`reset ${http2.constants.NGHTTP2_REFUSED_STREAM}`]),
    );
    expect(
      [...counts.keys()].every(
        (outcome) =>
          outcome === 'grpc-status 14' || outcome === `reset ${http2.constants.NGHTTP2_REFUSED_STREAM}`,
      ),
    ).toBe(true);
    // Before the queue was closed by stop, the waiting ones were set up after it and held it open
    // for the whole grace (5 s).
    expect(stopMs).toBeLessThan(4_000);
  }, 20_000);
});
