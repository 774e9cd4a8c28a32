import { execFile } from 'node:child_process';
import { connect as connectHttp2 } from 'node:http2';
import { promisify } from 'node:util';
import { Server, type ServiceDefinition, type sendUnaryData } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { bytesMethod } from '../../src/common/bytes-method.js';
import { listen, shutdown } from '../../src/common/grpc-server.js';

// A connection past a full room, every place with a call open, from the address holding the most,
// is refused at its first call (ConnectionRoom's "refused"), and closed in the next turn of the
// event loop (closing it in the read that brought the call aborted the process). Its call, whose
// message came in that same read, must not run meanwhile: its client is told it was not processed
// (REFUSED_STREAM, or the connection dropping), and a write it may repeat elsewhere would be done twice.

const definition: ServiceDefinition = {
  Write: bytesMethod('/probe.Room/Write'),
  Hold: bytesMethod('/probe.Room/Hold'),
};

describe('a call on a connection refused at its first call', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it('never reaches its handler, and its client is told it was refused', async () => {
    let written = 0;
    const server = new Server();
    server.addService(definition, {
      Write: (_call: unknown, done: sendUnaryData<Buffer>) => {
        written++;
        done(null, Buffer.alloc(0));
      },
      Hold: (_call: unknown, done: sendUnaryData<Buffer>) => {
        const timer = setTimeout(() => done(null, Buffer.alloc(0)), 20_000);
        cleanups.push(() => clearTimeout(timer));
      },
    });
    const port = await listen(server, '127.0.0.1', 0, undefined, { maxConnections: 1 });
    cleanups.push(() => shutdown(server, 100));
    // The one place is held by a call that lasts.
    const holder = connectHttp2(`http://127.0.0.1:${port}`);
    holder.on('error', () => {});
    cleanups.push(() => void holder.destroy());
    const held = holder.request({
      ':method': 'POST',
      ':path': '/probe.Room/Hold',
      'content-type': 'application/grpc',
      te: 'trailers',
    });
    held.on('error', () => {});
    held.end(Buffer.from([0, 0, 0, 0, 0]));
    await new Promise<void>((resolve) => holder.once('remoteSettings', () => resolve()));
    await new Promise((resolve) => setTimeout(resolve, 200));
    // Calls from another process, each on a connection of its own from the same address, headers
    // and message together, as a real client sends them.
    const script = `
      const http2 = require('node:http2');
      (async () => {
        const codes = [];
        for (let i = 0; i < 8; i++) {
          const session = http2.connect('http://127.0.0.1:${port}');
          session.on('error', () => {});
          const stream = session.request({ ':method': 'POST', ':path': '/probe.Room/Write', 'content-type': 'application/grpc', te: 'trailers' });
          stream.on('error', () => {});
          let status;
          stream.on('response', (headers) => { status = headers['grpc-status'] ?? status; });
          stream.on('trailers', (trailers) => { status = trailers['grpc-status']; });
          stream.resume();
          stream.end(Buffer.from([0, 0, 0, 0, 0]));
          await new Promise((resolve) => stream.once('close', resolve));
          codes.push(status === undefined ? 'rst ' + stream.rstCode : 'status ' + status);
          session.destroy();
        }
        process.stdout.write(JSON.stringify(codes));
      })();`;
    const { stdout } = await promisify(execFile)(process.execPath, ['-e', script]);
    const outcomes = JSON.parse(stdout) as string[];
    expect(outcomes).toHaveLength(8);
    // None answered: each was refused, not run.
    expect(outcomes.filter((outcome) => outcome.startsWith('status'))).toEqual([]);
    expect(written).toBe(0);
  }, 30_000);
});
