import { once } from 'node:events';
import { createServer } from 'node:net';
import { Writable } from 'node:stream';
import { experimental, logVerbosity, Server, ServerCredentials } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { logGrpcThrough } from '../../src/common/grpc-logging.js';
import { createLogger } from '../../src/common/logger.js';

/** A component's logger whose JSON lines are kept, parsed. */
function capturedLogger(): { lines: Array<Record<string, unknown>>; log: ReturnType<typeof createLogger> } {
  const lines: Array<Record<string, unknown>> = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line));
      done();
    },
  });
  return { lines, log: createLogger({ component: 'goods', destination }) };
}

describe("grpc-js's own log lines", () => {
  it("come out as the component's JSON lines, naming grpc-js as their source", () => {
    const { lines, log } = capturedLogger();
    logGrpcThrough(log);
    experimental.log(
      logVerbosity.ERROR,
      'Connection to dns:example.invalid:1 rejected by server because of excess pings',
    );
    expect(lines).toEqual([
      expect.objectContaining({
        level: 50,
        component: 'goods',
        source: 'grpc-js',
        msg: 'Connection to dns:example.invalid:1 rejected by server because of excess pings',
      }),
    ]);
  });

  it('leave out the line grpc-js writes as it fails to listen: the listen failure says it better', async () => {
    const { lines, log } = capturedLogger();
    logGrpcThrough(log);
    const holder = createServer().listen(0, '127.0.0.1');
    await once(holder, 'listening');
    const port = (holder.address() as { port: number }).port;
    try {
      const error = await new Promise<Error | null>((resolve) =>
        new Server().bindAsync(`127.0.0.1:${port}`, ServerCredentials.createInsecure(), resolve),
      );
      expect(error?.message).toMatch(/^No address added out of total 1 resolved/);
      expect(lines).toEqual([]);
    } finally {
      holder.close();
    }
  });
});
