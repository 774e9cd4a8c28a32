import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { Client, credentials, Metadata } from '@grpc/grpc-js';
import { describe, expect, it, vi } from 'vitest';
import { redactGrpcText } from '../../src/common/grpc-logging.js';

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
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/distributor/main.ts', '--port', '0'], {
      env: {
        ...process.env,
        SHOP_REGISTRY_TOKEN: TOKEN,
        GRPC_TRACE: 'server_call',
        GRPC_VERBOSITY: 'DEBUG',
        LOG_LEVEL: 'info',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout!.on('data', (chunk) => {
      output += chunk;
    });
    child.stderr!.on('data', (chunk) => {
      output += chunk;
    });
    const exited = once(child, 'exit');
    try {
      const port = await vi.waitFor(
        () => {
          const match = /listening on 127\.0\.0\.1:(\d+)/.exec(output);
          expect(match, output).not.toBeNull();
          return Number(match![1]);
        },
        { timeout: 20_000, interval: 50 },
      );
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
      await vi.waitFor(() => expect(output).toContain('received headers'), { timeout: 5_000 });
      expect(output).not.toContain(TOKEN);
      expect(output).toContain('[redacted]');
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
  }, 30_000);
});
