import { createServer, type IncomingMessage, request, type ServerResponse } from 'node:http';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ConnectionTracker } from '../../src/gateway/connection-tracker.js';
import { GatewayTelemetry } from '../../src/gateway/gateway-telemetry.js';
import { Closer, startDistributor, startGateway } from './support/cluster.js';

// The answer budget (ConnectionTracker.holdAnswer): which connections it closes, and the gateway's
// own pages, which are answered before the rest of a request's handling. The budget's effect on a
// client that pipelines long answers and reads nothing is in gateway-paging.test.ts.

const MIB = 1024 * 1024;
const cleanups: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function listening(handler: (request: IncomingMessage, response: ServerResponse) => void) {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return { server, port: (server.address() as { port: number }).port };
}

function client(port: number): { socket: Socket; closed: Promise<void> } {
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => {});
  cleanups.push(() => void socket.destroy());
  return { socket, closed: new Promise((resolve) => socket.once('close', () => resolve())) };
}

describe('the answer budget', () => {
  it('closes a connection whose answers stand still, not a larger one whose answer the client is taking', async () => {
    let tracker: ConnectionTracker | undefined;
    const closedByBudget: number[] = [];
    const { server, port } = await listening((incoming, response) => {
      tracker!.requestStarted(incoming);
      if (incoming.url === '/taken') {
        // 3 MiB counted, written 16 KiB at a time to a client that reads: the kernel keeps taking.
        tracker!.holdAnswer(response, 3 * MIB);
        const timer = setInterval(() => response.write(Buffer.alloc(16 * 1024)), 20);
        response.once('close', () => clearInterval(timer));
      } else {
        // 2 MiB counted, nothing written: the answer stands still.
        tracker!.holdAnswer(response, 2 * MIB);
      }
    });
    tracker = new ConnectionTracker(server, {
      firstRequestTimeoutMs: 10_000,
      answerBudgetBytes: 4 * MIB,
      answerStallMs: 200,
      onAnswerBudget: (closed) => closedByBudget.push(closed),
    });
    const taking = client(port);
    let taken = 0;
    taking.socket.on('data', (chunk: Buffer) => {
      taken += chunk.length;
    });
    taking.socket.write('GET /taken HTTP/1.1\r\nHost: x\r\n\r\n');
    await vi.waitFor(() => expect(taken).toBeGreaterThan(0));
    const stalled = client(port);
    stalled.socket.resume();
    stalled.socket.write('GET /stalled HTTP/1.1\r\nHost: x\r\n\r\n');
    // 5 MiB counted: past the budget. The stalled one goes, though it holds less.
    let stalledClosed = false;
    void stalled.closed.then(() => {
      stalledClosed = true;
    });
    await vi.waitFor(() => expect(stalledClosed).toBe(true), { timeout: 5_000, interval: 20 });
    expect(closedByBudget).toEqual([1]);
    expect(taking.socket.destroyed).toBe(false);
    const before = taken;
    await vi.waitFor(() => expect(taken).toBeGreaterThan(before + 64 * 1024));
    expect(tracker.heldAnswerBytes).toBe(3 * MIB);
  });

  it('counts the body of each of the gateway’s own pages while it waits for its client, not for HEAD', async () => {
    const held: Array<{ path: string; bytes: number }> = [];
    const telemetry = new GatewayTelemetry(
      {
        routeOf: () => undefined,
        routes: () => [],
        revision: () => 1,
        stopping: () => false,
        holdAnswer: (response, bytes) => held.push({ path: response.req.url ?? '', bytes }),
      },
      { metrics: true },
    );
    const { port } = await listening((incoming, response) => {
      telemetry.onRequest(incoming, response, incoming.method ?? 'GET', incoming.url ?? '/');
    });
    const fetchPage = (method: string, path: string) =>
      new Promise<number>((resolve, reject) => {
        const outgoing = request({ port, host: '127.0.0.1', method, path }, (response) => {
          let bytes = 0;
          response.on('data', (chunk: Buffer) => {
            bytes += chunk.length;
          });
          response.on('end', () => resolve(bytes));
        });
        outgoing.on('error', reject);
        outgoing.end();
      });
    const pages = ['/healthz', '/readyz', '/status', '/status.js', '/status.json', '/metrics'];
    const received: Array<{ path: string; bytes: number }> = [];
    for (const path of pages) received.push({ path, bytes: await fetchPage('GET', path) });
    for (const path of pages) await fetchPage('HEAD', path);
    expect(held).toEqual(received);
    expect(received.every(({ bytes }) => bytes > 0)).toBe(true);
  });

  it('holds requests for the gateway’s own pages to the bound on pipelined requests', async () => {
    const closer = new Closer();
    cleanups.push(() => closer.closeAll());
    const distributor = (await startDistributor(closer)).address;
    const started = await startGateway(closer, distributor, { maxPipelinedRequests: 4 });
    const pipelined = client(started.port);
    let text = '';
    pipelined.socket.setEncoding('latin1');
    pipelined.socket.on('data', (chunk: string) => {
      text += chunk;
    });
    pipelined.socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(20));
    await pipelined.closed;
    const statuses = [...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((match) => Number(match[1]));
    expect(statuses.slice(0, 4)).toEqual([200, 200, 200, 200]);
    expect(statuses).toContain(503);
    expect(statuses.length).toBeLessThan(20);
    await vi.waitFor(() => expect(started.gateway.heldAnswerBytes).toBe(0));
  });
});
