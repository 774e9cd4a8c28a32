import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type CapturedLog, captureLog } from '../helpers/log-capture.js';
import { Closer, startDistributor, startGateway, waitForRoute } from './support/cluster.js';
import { startFakeGoods } from './support/fake-shop.js';

/** Writes `parts` on a connection of its own, `gapMs` apart, and resolves with all it received once closed. */
function exchange(port: number, parts: string[], gapMs = 100): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let received = '';
    socket.on('error', () => {});
    socket.on('data', (data: Buffer) => {
      received += data.toString('latin1');
    });
    socket.on('close', () => resolve(received));
    for (const [index, part] of parts.entries()) {
      setTimeout(() => {
        if (!socket.destroyed) socket.write(part);
      }, index * gapMs);
    }
    setTimeout(() => socket.destroy(), 5_000).unref();
  });
}

// README, "Request ids and trace context": every log line any component writes about a request
// carries its id. A request whose body the HTTP parser refuses while it is being read is a request:
// it has an id (answered in X-Request-Id), and the gateway's line about the refusal must name it.
describe('the request id of a request whose body the parser refuses', () => {
  const closer = new Closer();
  let port: number;
  let gatewayLog: CapturedLog;

  beforeAll(async () => {
    const distributor = (await startDistributor(closer)).address;
    await startFakeGoods(closer, distributor);
    gatewayLog = captureLog('gateway');
    const started = await startGateway(closer, distributor, { log: gatewayLog.log });
    await waitForRoute(started.gateway, 'POST /goods', 1);
    port = started.port;
  });
  afterAll(() => closer.closeAll());

  const head = (id: string) =>
    `POST /goods HTTP/1.1\r\nHost: localhost\r\nX-Request-Id: ${id}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{"na\r\n`;

  it('a bad chunk in the middle of the body: the 400 and the log line about it name the request', async () => {
    const id = 'bad-chunk-1';
    const answer = await exchange(port, [head(id), 'not a size\r\n']);
    expect(answer).toMatch(/^HTTP\/1\.1 400 /);
    expect(answer).toContain(`X-Request-Id: ${id}`);
    await vi.waitFor(() =>
      expect(
        gatewayLog.lines.find((line) => line.msg === 'request answered' && line.requestId === id),
      ).toBeDefined(),
    );
    const refusal = gatewayLog.lines.find((line) => line.errorCode === 'HPE_INVALID_CHUNK_SIZE');
    expect(refusal).toMatchObject({ requestId: id, status: 400 });
  });

  it('a client that closes its side in the middle of the body: the line about it names the request', async () => {
    const id = 'half-closed-1';
    await new Promise<void>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.on('error', () => {});
      socket.on('close', () => resolve());
      socket.write(head(id), () => setTimeout(() => socket.end(), 100));
      setTimeout(() => socket.destroy(), 5_000).unref();
    });
    await vi.waitFor(() =>
      expect(
        gatewayLog.lines.find((line) => line.msg === 'request answered' && line.requestId === id),
      ).toBeDefined(),
    );
    const closed = gatewayLog.lines.find(
      (line) => line.msg === 'the client closed its side in the middle of a request',
    );
    expect(closed).toMatchObject({ requestId: id });
  });
});
