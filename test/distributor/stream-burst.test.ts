import http2 from 'node:http2';
import { afterEach, describe, expect, it } from 'vitest';
import { createDistributorServer } from '../../src/distributor/distributor-server.js';
import { WatchRequest } from '../../src/gen/distributor.js';
import { grpcFrame, openRawCall } from '../helpers/raw-grpc.js';
import { unloadedStopwatch } from '../helpers/unloaded-stopwatch.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/**
 * How a stream ended: its grpc-status, from the trailers or from a trailers-only answer (a call that
 * ends before sending anything), or the code of the reset that closed it.
 */
const outcomeOf = (stream: http2.ClientHttp2Stream): Promise<string> =>
  new Promise((resolve) => {
    stream.on('response', (headers) => {
      if (headers['grpc-status'] !== undefined) resolve(`grpc-status ${headers['grpc-status']}`);
    });
    stream.on('trailers', (trailers) => resolve(`grpc-status ${trailers['grpc-status']}`));
    stream.on('close', () => resolve(`reset ${stream.rstCode}`));
  });

/** An HTTP/2 connection to the distributor, closed after the test, once its settings came. */
async function connectTo(port: number): Promise<http2.ClientHttp2Session> {
  const client = http2.connect(`http://127.0.0.1:${port}`);
  client.on('error', () => {});
  cleanups.push(() => client.destroy());
  await new Promise((resolve) => client.once('remoteSettings', resolve));
  return client;
}

/** A Watch stream opened on `client`, its request not yet sent, its answer read and dropped. */
function openWatch(client: http2.ClientHttp2Session): http2.ClientHttp2Stream {
  const stream = openRawCall(client, '/shop.v1.DistributorService/Watch');
  stream.resume();
  return stream;
}

/** The request of a Watch stream of the first contract, framed. */
const WATCH_REQUEST = grpcFrame(WatchRequest.encode(WatchRequest.create()).finish());

/**
 * The longest a stop may take, its waits for a CPU on a busy machine left out: a stop that waits out
 * its grace (5 s) takes that grace whatever the load. In wall time, a thousand streams' stop took
 * 0.3 s alone and 1.6 s beside other test files and three busy loops on two cores, and a loaded
 * machine could stretch it past this bound.
 */
const STOP_BOUND_MS = 4_000;

describe('a burst of streams on one connection', () => {
  it('is ended whole by a stop, the streams still waiting to be set up included, without waiting out the grace', async () => {
    const distributor = createDistributorServer();
    const port = await distributor.listen('127.0.0.1', 0);
    let stopped = false;
    cleanups.push(() => stopped || distributor.stop(100));
    const client = await connectTo(port);

    // Watch streams of the first contract, all opened at once: more than a slice of setup.
    const ended = Array.from({ length: 1_000 }, () => {
      const stream = openWatch(client);
      stream.end(WATCH_REQUEST);
      return { stream, outcome: outcomeOf(stream) };
    });
    // Stopped as soon as the first watcher has its list, while most streams still wait.
    await new Promise((resolve) => ended[0]!.stream.once('data', resolve));
    const stopwatch = unloadedStopwatch();
    await distributor.stop(5_000);
    stopped = true;
    const stopMs = stopwatch();

    const outcomes = await Promise.all(ended.map(({ outcome }) => outcome));
    // Ended as shutting down (UNAVAILABLE), or refused before being processed: nothing left open.
    const counts = new Map<string, number>();
    for (const outcome of outcomes) counts.set(outcome, (counts.get(outcome) ?? 0) + 1);
    expect([...counts.keys()].sort()).toEqual(
      expect.arrayContaining([`reset ${http2.constants.NGHTTP2_REFUSED_STREAM}`]),
    );
    expect(
      [...counts.entries()].filter(
        ([outcome]) =>
          outcome !== 'grpc-status 14' && outcome !== `reset ${http2.constants.NGHTTP2_REFUSED_STREAM}`,
      ),
    ).toEqual([]);
    // Before the queue was closed by stop, the waiting ones were set up after it and held it open
    // for the whole grace (5 s).
    expect(stopMs).toBeLessThan(STOP_BOUND_MS);
  }, 20_000);

  it('ends a Watch whose request comes only once the stop has begun, without waiting out the grace', async () => {
    const distributor = createDistributorServer();
    const port = await distributor.listen('127.0.0.1', 0);
    const client = await connectTo(port);
    // Set up (its HEADERS came), but its handler waits for the request, which is held back.
    const stream = openWatch(client);
    const outcome = outcomeOf(stream);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const stopMs = unloadedStopwatch();
    const stopped = distributor.stop(5_000);
    stream.end(WATCH_REQUEST);
    await stopped;
    expect(await outcome).toBe('grpc-status 14');
    expect(stopMs()).toBeLessThan(STOP_BOUND_MS);
  }, 20_000);
});
