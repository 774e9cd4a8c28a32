import { connect, createServer, type Server, type Socket } from 'node:net';

const PREFACE_LENGTH = 24;
const FRAME_HEADER_LENGTH = 9;
const HEADERS = 0x1;
const RST_STREAM = 0x3;
const GOAWAY = 0x7;
const END_STREAM = 0x1;

/** HTTP/2 error codes (RFC 9113 §7) a test resets with. */
export const Http2Error = { PROTOCOL_ERROR: 1, INTERNAL_ERROR: 2, CANCEL: 8 } as const;

/**
 * A TCP proxy in front of a gRPC server that reads just enough HTTP/2 to cut the calls in flight
 * the way an HTTP/2 hop in front of a frozen or dying instance does: nothing more passes from the
 * server, and the client gets RST_STREAM on every open stream, or a GOAWAY, with an error code.
 * Frames are forwarded whole, so what it writes never lands inside another frame.
 */
export class Http2CuttingProxy {
  readonly #target: { host: string; port: number };
  readonly #links = new Set<Link>();
  readonly #server: Server;
  #port = 0;

  private constructor(target: { host: string; port: number }) {
    this.#target = target;
    this.#server = createServer((client) => this.#accept(client));
  }

  static async start(target: { host: string; port: number }): Promise<Http2CuttingProxy> {
    const proxy = new Http2CuttingProxy(target);
    await new Promise<void>((resolve) => proxy.#server.listen(0, '127.0.0.1', resolve));
    const address = proxy.#server.address();
    proxy.#port = typeof address === 'object' && address ? address.port : 0;
    return proxy;
  }

  get port(): number {
    return this.#port;
  }

  /** Streams open now (requests sent, no end from the server yet), over every connection. */
  get openStreams(): number {
    let count = 0;
    for (const link of this.#links) count += link.open.size;
    return count;
  }

  /** From now on nothing passes from the server; every open stream gets RST_STREAM with `code`. */
  resetStreams(code: number): void {
    for (const link of this.#links) {
      link.frozen = true;
      for (const id of link.open) link.client.write(frame(RST_STREAM, 0, id, uint32(code)));
      link.open.clear();
    }
  }

  /** From now on nothing passes; each connection gets GOAWAY (last stream 0) with `code`, then ends. */
  goAway(code: number): void {
    for (const link of this.#links) {
      link.frozen = true;
      link.client.end(frame(GOAWAY, 0, 0, Buffer.concat([uint32(0), uint32(code)])));
    }
  }

  /**
   * From now on nothing passes; each connection to the client is reset (TCP RST), as the kernel
   * resets the connections of a process killed with bytes unread: grpc-js reports the calls on it
   * UNAVAILABLE "read ECONNRESET".
   */
  resetConnections(): void {
    for (const link of this.#links) {
      link.frozen = true;
      link.client.resetAndDestroy();
    }
  }

  async close(): Promise<void> {
    for (const link of this.#links) {
      link.client.destroy();
      link.upstream.destroy();
    }
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #accept(client: Socket): void {
    const upstream = connect(this.#target);
    const link: Link = { client, upstream, open: new Set(), frozen: false };
    this.#links.add(link);
    const closeBoth = (): void => {
      client.destroy();
      upstream.destroy();
      this.#links.delete(link);
    };
    for (const socket of [client, upstream]) {
      socket.on('error', () => {});
      socket.on('close', closeBoth);
    }
    let fromClient: Buffer = Buffer.alloc(0);
    let prefaceSeen = false;
    client.on('data', (data: Buffer) => {
      if (link.frozen) return;
      fromClient = Buffer.concat([fromClient, data]);
      if (!prefaceSeen) {
        if (fromClient.length < PREFACE_LENGTH) return;
        upstream.write(fromClient.subarray(0, PREFACE_LENGTH));
        fromClient = fromClient.subarray(PREFACE_LENGTH);
        prefaceSeen = true;
      }
      fromClient = forwardFrames(fromClient, (type, _flags, id, bytes) => {
        if (type === HEADERS && id !== 0) link.open.add(id);
        if (type === RST_STREAM) link.open.delete(id);
        upstream.write(bytes);
      });
    });
    let fromServer: Buffer = Buffer.alloc(0);
    upstream.on('data', (data: Buffer) => {
      if (link.frozen) return;
      fromServer = Buffer.concat([fromServer, data]);
      fromServer = forwardFrames(fromServer, (type, flags, id, bytes) => {
        if ((type === HEADERS && flags & END_STREAM) || type === RST_STREAM) link.open.delete(id);
        client.write(bytes);
      });
    });
  }
}

interface Link {
  readonly client: Socket;
  readonly upstream: Socket;
  /** Stream ids the client opened that the server has not ended. */
  readonly open: Set<number>;
  /** Cut: nothing more is forwarded either way. */
  frozen: boolean;
}

/** Hands every whole frame at the start of `buffer` to `forward`; returns what is left. */
function forwardFrames(
  buffer: Buffer,
  forward: (type: number, flags: number, streamId: number, bytes: Buffer) => void,
): Buffer {
  let rest = buffer;
  while (rest.length >= FRAME_HEADER_LENGTH) {
    const length = rest.readUIntBE(0, 3);
    if (rest.length < FRAME_HEADER_LENGTH + length) break;
    forward(
      rest[3]!,
      rest[4]!,
      rest.readUInt32BE(5) & 0x7fffffff,
      rest.subarray(0, FRAME_HEADER_LENGTH + length),
    );
    rest = rest.subarray(FRAME_HEADER_LENGTH + length);
  }
  return Buffer.from(rest);
}

function frame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(FRAME_HEADER_LENGTH);
  header.writeUIntBE(payload.length, 0, 3);
  header[3] = type;
  header[4] = flags;
  header.writeUInt32BE(streamId, 5);
  return Buffer.concat([header, payload]);
}

function uint32(value: number): Buffer {
  const bytes = Buffer.alloc(4);
  bytes.writeUInt32BE(value);
  return bytes;
}
