import { once } from 'node:events';
import { createServer } from 'node:net';
import { Server, ServerCredentials } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/common/config.js';
import { listenFailure } from '../../src/common/listen-failure.js';
import { GATEWAY_SETTINGS } from '../../src/gateway/config.js';

/** What Node says when a plain server cannot listen on host:port. */
async function nodeListenError(host: string, port: number): Promise<Error> {
  const server = createServer();
  server.listen(port, host);
  const [error] = (await once(server, 'error')) as [Error];
  return error;
}

describe('why a component cannot listen, said as what to change', () => {
  it("a port in use, in Node's words and in grpc-js's: a failure (it may heal), naming --port and its variable", async () => {
    const holder = createServer().listen(0, '127.0.0.1');
    await once(holder, 'listening');
    const port = (holder.address() as { port: number }).port;
    try {
      const grpcError = await new Promise<Error>((resolve) =>
        new Server().bindAsync(`127.0.0.1:${port}`, ServerCredentials.createInsecure(), (error) =>
          resolve(error!),
        ),
      );
      for (const error of [await nodeListenError('127.0.0.1', port), grpcError]) {
        const failure = listenFailure(error, '127.0.0.1', port, GATEWAY_SETTINGS);
        expect(failure).not.toBeInstanceOf(ConfigError);
        expect(failure.message).toBe(
          `cannot listen on 127.0.0.1:${port}: the port is in use by another process (another copy of the shop still running?); stop it, or choose another port with --port (GATEWAY_PORT)`,
        );
        expect(failure.cause).toBe(error);
      }
    } finally {
      holder.close();
    }
  });

  it('an address this machine does not have: names --host and its variable', async () => {
    // TEST-NET-1 (RFC 5737): on no interface here; nothing is sent, the bind fails.
    const error = await nodeListenError('192.0.2.1', 8000);
    expect(listenFailure(error, '192.0.2.1', 8000, GATEWAY_SETTINGS).message).toBe(
      'cannot listen on 192.0.2.1:8000: 192.0.2.1 is not an address of this machine; choose one it has with --host (GATEWAY_HOST) (0.0.0.0: all)',
    );
  });

  it('a privileged port without the privilege is bad configuration (exit 2): starting again fails the same way', () => {
    // Written as Node says it: these tests run as root, who may bind port 80.
    const error = Object.assign(new Error('listen EACCES: permission denied 0.0.0.0:80'), { code: 'EACCES' });
    const failure = listenFailure(error, '0.0.0.0', 80, GATEWAY_SETTINGS);
    expect(failure).toBeInstanceOf(ConfigError);
    expect(failure.message).toBe(
      'cannot listen on 0.0.0.0:80: not allowed (a port below 1024 needs privileges); choose another port with --port (GATEWAY_PORT)',
    );
  });

  it("a host name that does not resolve, in Node's words and in grpc-js's: names --host and its variable", () => {
    // Written as each says it: resolving a name here could send a query off this machine.
    const nodeError = Object.assign(new Error('getaddrinfo ENOTFOUND nosuch.invalid'), { code: 'ENOTFOUND' });
    const grpcError = new Error(
      'Name resolution failed for target dns:nosuch.invalid:9010: Error: getaddrinfo ENOTFOUND nosuch.invalid',
    );
    for (const error of [nodeError, grpcError]) {
      const failure = listenFailure(error, 'nosuch.invalid', 9010, GATEWAY_SETTINGS);
      expect(failure).not.toBeInstanceOf(ConfigError);
      expect(failure.message).toBe(
        'cannot listen on nosuch.invalid:9010: the host name nosuch.invalid does not resolve to an address of this machine; choose an address it has with --host (GATEWAY_HOST) (0.0.0.0: all)',
      );
    }
  });

  it('anything else: the address and the cause as it was', () => {
    expect(listenFailure(new Error('something odd'), '::1', 9000, GATEWAY_SETTINGS).message).toBe(
      'cannot listen on [::1]:9000: something odd',
    );
  });
});
