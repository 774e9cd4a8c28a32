import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, credentials, Metadata } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { redactGrpcText } from '../../src/common/grpc-logging.js';
import {
  CALLER_PROOF_HEADER,
  DISTRIBUTOR_PROOF_HEADER,
  makeCallerProof,
  makeNonce,
} from '../../src/common/registry-proof.js';
import { spawnComponent } from '../e2e/support/processes.js';

const TOKEN = 'trace-redaction-token-0123456789';

/**
 * What a distributor run with GRPC_TRACE=server_call prints while it takes one unary call to
 * `method` with `metadata` (the call's answer does not matter, only the trace of its headers).
 */
async function distributorTraceOfCall(method: string, metadata: Metadata): Promise<string> {
  const distributor = spawnComponent('src/distributor/main.ts', ['--port', '0'], {
    SHOP_REGISTRY_TOKEN: TOKEN,
    GRPC_TRACE: 'server_call',
    GRPC_VERBOSITY: 'DEBUG',
  });
  try {
    const listening = await distributor.waitForLine(/listening on 127\.0\.0\.1:\d+/, 20_000);
    const port = Number(/listening on 127\.0\.0\.1:(\d+)/.exec(listening)![1]);
    const client = new Client(`127.0.0.1:${port}`, credentials.createInsecure());
    await new Promise<void>((resolve) => {
      client.makeUnaryRequest(
        method,
        (value: Buffer) => value,
        (value: Buffer) => value,
        Buffer.alloc(0),
        metadata,
        () => resolve(),
      );
    });
    client.close();
    await distributor.waitForLine(/received headers/, 5_000);
    return distributor.lines.join('\n');
  } finally {
    distributor.child.kill('SIGTERM');
    await distributor.exited();
  }
}

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

  it('redact a binary (-bin) value whole, and keep an escaped quote inside a value', () => {
    const metadata = new Metadata();
    metadata.set('x-token-bin', Buffer.from('binary-secret'));
    metadata.set('authorization', `Bearer "${TOKEN}"],"x":["`);
    metadata.set('x-note', 'a "quoted" note');
    const line = `Request to /shop.v1.X/Y received headers ${JSON.stringify(metadata.toJSON())}`;
    const redacted = redactGrpcText(line);
    expect(redacted).toBe(
      'Request to /shop.v1.X/Y received headers ' +
        '{"x-token-bin":["[redacted]"],"authorization":["[redacted]"],"x-note":["a \\"quoted\\" note"]}',
    );
  });

  it("of a distributor run with GRPC_TRACE=server_call do not show a caller's registry proof", async () => {
    // A proof is a credential for 5 minutes: read from a log, it opens a Watch, or the Register of
    // its node, from the address and port it names once that connection has closed.
    const method = '/shop.v1.DistributorService/List';
    const proof = makeCallerProof(TOKEN, method, makeNonce(), '127.0.0.1:1');
    const metadata = new Metadata();
    metadata.set(CALLER_PROOF_HEADER, proof);
    const output = await distributorTraceOfCall(method, metadata);
    expect(output).not.toContain(proof.split(' ').at(-1));
    // The line's text, in the JSON of the log line: its quotes escaped.
    expect(output).toContain(String.raw`\"${CALLER_PROOF_HEADER}\":[\"[redacted]\"]`);
  }, 30_000);

  it('keep the values of secret headers out of the headers and trailers a server answered with', () => {
    // subchannel_call prints them a line each, not as metadata JSON.
    const line =
      'subchannel_call | [0] Received server headers:\n\t\t:status: 200\n' +
      '\t\tcontent-type: application/grpc+proto\n' +
      `\t\t${DISTRIBUTOR_PROOF_HEADER}: v1 ${'ab'.repeat(32)}\n\t\tset-cookie: id=s3cr3t\n\t\tx-request-id: r-1\n`;
    expect(redactGrpcText(line)).toBe(
      'subchannel_call | [0] Received server headers:\n\t\t:status: 200\n' +
        '\t\tcontent-type: application/grpc+proto\n' +
        `\t\t${DISTRIBUTOR_PROOF_HEADER}: [redacted]\n\t\tset-cookie: [redacted]\n\t\tx-request-id: r-1\n`,
    );
  });

  it("of a service run with GRPC_TRACE=subchannel_call do not show the distributor's proof", async () => {
    const distributor = spawnComponent('src/distributor/main.ts', ['--port', '0', '--metrics-port', 'off'], {
      SHOP_REGISTRY_TOKEN: TOKEN,
    });
    const dataDir = mkdtempSync(join(tmpdir(), 'shop-trace-redaction-'));
    try {
      const listening = await distributor.waitForLine(/listening on 127\.0\.0\.1:\d+/, 20_000);
      const port = /listening on 127\.0\.0\.1:(\d+)/.exec(listening)![1];
      const goods = spawnComponent(
        'src/services/goods/main.ts',
        ['--port', '0', '--metrics-port', 'off', '--distributor', `127.0.0.1:${port}`],
        {
          SHOP_REGISTRY_TOKEN: TOKEN,
          DATA_DIR: dataDir,
          MYSQL_URL: '',
          GRPC_TRACE: 'subchannel_call',
          GRPC_VERBOSITY: 'DEBUG',
        },
      );
      try {
        await goods.waitForLine(/registered with the distributor/, 20_000);
        const output = goods.lines.join('\n');
        // The line's text, in the JSON of the log line: its tabs escaped.
        expect(output).toContain(String.raw`\t\t${DISTRIBUTOR_PROOF_HEADER}: [redacted]`);
        expect(output).not.toMatch(/x-shop-distributor-proof: v1 [0-9a-f]{64}/);
      } finally {
        goods.child.kill('SIGTERM');
        await goods.exited();
      }
    } finally {
      distributor.child.kill('SIGTERM');
      await distributor.exited();
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 60_000);

  it('cost a scan in proportion to the text, on a method path a client made of metadata look-alikes', () => {
    // grpc-js prints the path a client sent, raw: `Received call to method ...` (server_call).
    for (const piece of ['"a":[', '"a":["a",', ',"a":["\\"']) {
      const line = `server_call | Received call to method /${piece.repeat(100_000 / piece.length)}`;
      const started = performance.now();
      expect(redactGrpcText(line)).toBe(line);
      // Quadratic, this took seconds; linear, a few ms even on a loaded machine.
      expect(performance.now() - started).toBeLessThan(250);
    }
  });

  it('of a distributor run with GRPC_TRACE=server_call do not show the registration token', async () => {
    const metadata = new Metadata();
    metadata.set('authorization', `Bearer ${TOKEN}`);
    const output = await distributorTraceOfCall('/grpc.health.v1.Health/Check', metadata);
    expect(output).not.toContain(TOKEN);
    expect(output).toContain('[redacted]');
  }, 30_000);
});
