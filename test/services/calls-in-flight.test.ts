import { Client, credentials, Server, ServerCredentials, type ServiceError, status } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { asIs, bytesMethod } from '../../src/common/bytes-method.js';
import { limitCallsInFlight } from '../../src/services/common/calls-in-flight.js';

const HOLD = { Hold: bytesMethod('/test.v1.Hold/Hold') };

describe('limitCallsInFlight', () => {
  let server: Server | undefined;
  let client: Client | undefined;
  afterEach(() => {
    client?.close();
    server?.forceShutdown();
  });

  it('runs at most the limit at once, answers the others RESOURCE_EXHAUSTED at once, and frees a slot on each answer', async () => {
    let handlersRun = 0;
    const held: Array<() => void> = [];
    server = new Server();
    server.addService(
      HOLD,
      limitCallsInFlight(
        HOLD,
        {
          Hold: (_call: unknown, callback: (error: null, value: Buffer) => void) => {
            handlersRun++;
            held.push(() => callback(null, Buffer.from('done')));
          },
        },
        2,
      ),
    );
    const port = await new Promise<number>((resolve, reject) =>
      server!.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (error, bound) =>
        error ? reject(error) : resolve(bound),
      ),
    );
    const caller = new Client(`127.0.0.1:${port}`, credentials.createInsecure());
    client = caller;
    const call = () =>
      new Promise<number>((resolve) =>
        caller.makeUnaryRequest(
          HOLD.Hold.path,
          asIs,
          asIs,
          Buffer.alloc(0),
          { deadline: Date.now() + 10_000 },
          (error: ServiceError | null) => resolve(error ? error.code : status.OK),
        ),
      );
    const settled: number[] = [];
    const calls = Array.from({ length: 5 }, () => call().then((code) => settled.push(code)));
    // Three are refused without waiting for the two held ones.
    await expect.poll(() => settled.length, { timeout: 5_000 }).toBe(3);
    expect(settled).toEqual([
      status.RESOURCE_EXHAUSTED,
      status.RESOURCE_EXHAUSTED,
      status.RESOURCE_EXHAUSTED,
    ]);
    expect(handlersRun).toBe(2);
    for (const release of held.splice(0)) release();
    await Promise.all(calls);
    expect(settled.slice(3)).toEqual([status.OK, status.OK]);
    // The slots are free again.
    const again = call();
    await expect.poll(() => held.length).toBe(1);
    held[0]!();
    expect(await again).toBe(status.OK);
  });
});
