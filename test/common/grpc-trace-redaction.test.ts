import { Client, credentials, Metadata } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { redactGrpcText } from '../../src/common/grpc-logging.js';
import { spawnComponent } from '../e2e/support/processes.js';

const TOKEN = 'trace-redaction-token-0123456789';

describe("grpc-js's trace lines", () => {
  it('keep the values of secret metadata out of the text', () => {
    const line =
      'server_call | Request to /shop.v1.DistributorService/Register received headers ' +
      `{"authorization":["Bearer ${TOKEN}"],"x-request-id":["r-1"],"x-api-key":["k1","k2"],"user-agent":["grpc-node-js/1.14.7"]}`;
    const redacted = redactGrpcText(line);
    expect(redacted).not.toContain(TOKEN);
    expect(redacted).not.toContain('k1');
    expect(redacted).toContain('"authorization":["[redacted]"]');
    expect(redacted).toContain('"x-request-id":["r-1"]');
    expect(redacted).toContain('"user-agent":["grpc-node-js/1.14.7"]');
  });

  it('of a distributor run with GRPC_TRACE=server_call do not show the registration token', async () => {
    const distributor = spawnComponent('src/distributor/main.ts', ['--port', '0'], {
      SHOP_REGISTRY_TOKEN: TOKEN,
      GRPC_TRACE: 'server_call',
      GRPC_VERBOSITY: 'DEBUG',
    });
    const output = () => distributor.lines.join('\n');
    try {
      const listening = await distributor.waitForLine(/listening on 127\.0\.0\.1:\d+/, 20_000);
      const port = Number(/listening on 127\.0\.0\.1:(\d+)/.exec(listening)![1]);
      const client = new Client(`127.0.0.1:${port}`, credentials.createInsecure());
      const metadata = new Metadata();
      metadata.set('authorization', `Bearer ${TOKEN}`);
      await new Promise<void>((resolve) => {
        client.makeUnaryRequest(
          '/grpc.health.v1.Health/Check',
          (value: Buffer) => value,
          (value: Buffer) => value,
          Buffer.alloc(0),
          metadata,
          () => resolve(),
        );
      });
      client.close();
      await distributor.waitForLine(/received headers/, 5_000);
      expect(output()).not.toContain(TOKEN);
      expect(output()).toContain('[redacted]');
    } finally {
      distributor.child.kill('SIGTERM');
      await distributor.exited();
    }
  }, 30_000);
});
