import type { ClientHttp2Session, ClientHttp2Stream } from 'node:http2';

/** A gRPC message frame: the flag byte (not compressed), the length, the bytes. */
export function grpcFrame(message: Uint8Array): Buffer {
  const framed = Buffer.alloc(5 + message.length);
  framed.writeUInt32BE(message.length, 1);
  framed.set(message, 5);
  return framed;
}

/**
 * A gRPC call made by hand on `session`: its request headers sent, its errors ignored (a test looks
 * at how it ends instead); the caller writes its frames.
 */
export function openRawCall(session: ClientHttp2Session, path: string): ClientHttp2Stream {
  const stream = session.request({
    ':method': 'POST',
    ':path': path,
    'content-type': 'application/grpc',
    te: 'trailers',
  });
  stream.on('error', () => {});
  return stream;
}
