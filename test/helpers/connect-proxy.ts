import { createServer } from 'node:http';
import { type AddressInfo, connect, type Socket } from 'node:net';
import { type Client, makeGenericClientConstructor, type ServiceDefinition } from '@grpc/grpc-js';
import { asIs, bytesMethod } from '../../src/common/bytes-method.js';

/** An HTTP CONNECT proxy on loopback, for tests of what grpc-js sends to a proxy. */
export interface RecordingProxy {
  /** `http://127.0.0.1:<port>`, for http_proxy, https_proxy or grpc_proxy. */
  readonly url: string;
  /** The CONNECT request targets it was asked for, in order. */
  readonly asked: string[];
  close(): Promise<void>;
}

/**
 * Starts a CONNECT proxy that records each target it is asked for and tunnels every one of them to
 * the loopback port `tunnelTo`, whatever host it names: a test can send a channel to another
 * machine's address through it, and no packet leaves this machine.
 */
export async function startRecordingProxy(tunnelTo: number): Promise<RecordingProxy> {
  const asked: string[] = [];
  const tunnels = new Set<Socket>();
  const proxy = createServer((_request, response) => response.writeHead(405).end());
  proxy.on('connect', (request, client: Socket, head: Buffer) => {
    asked.push(request.url ?? '');
    const upstream = connect(tunnelTo, '127.0.0.1', () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) upstream.write(head);
      upstream.pipe(client).pipe(upstream);
    });
    for (const socket of [client, upstream]) {
      tunnels.add(socket);
      socket.on('error', () => socket.destroy());
      socket.on('close', () => tunnels.delete(socket));
    }
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`,
    asked,
    close: async () => {
      for (const socket of tunnels) socket.destroy();
      await new Promise((resolve) => proxy.close(resolve));
    },
  };
}

/** A one-method gRPC service that answers any request "pong", as bytes. */
export const ECHO: ServiceDefinition = { ping: bytesMethod('/test.Echo/Ping') };

/** ECHO's implementation, for Server.addService. */
export const ECHO_ANSWERS = {
  ping: (_call: unknown, callback: (error: null, answer: Buffer) => void) =>
    callback(null, Buffer.from('pong')),
};

export const EchoClient = makeGenericClientConstructor(ECHO, 'Echo');

/** One Ping on `client`: its answer, or a rejection with grpc-js's error after `deadlineMs`. */
export function ping(client: Client, deadlineMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) =>
    client.makeUnaryRequest(
      '/test.Echo/Ping',
      asIs,
      asIs,
      Buffer.from('ping'),
      { deadline: Date.now() + deadlineMs },
      (error, answer) => (error ? reject(error) : resolve(String(answer))),
    ),
  );
}
