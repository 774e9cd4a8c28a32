import { credentials, makeGenericClientConstructor, type ServiceError } from '@grpc/grpc-js';
import { bytesMethod } from '../../../src/common/bytes-method.js';

type RawMethod = (
  body: Buffer,
  options: { deadline: number },
  callback: (error: ServiceError | null) => void,
) => unknown;

/**
 * Sends hand-made protobuf bytes to a unary method and resolves with the status it ends with: what a
 * peer with a different (or broken) idea of the schema can send, which generated clients cannot.
 */
export async function callRaw(
  address: string,
  path: string,
  body: Buffer,
): Promise<{ code: number; details: string }> {
  const Client = makeGenericClientConstructor({ raw: bytesMethod(path) }, 'raw');
  const client = new Client(address, credentials.createInsecure());
  try {
    return await new Promise((resolve) => {
      const raw = (client as unknown as { raw: RawMethod }).raw.bind(client);
      raw(body, { deadline: Date.now() + 10_000 }, (error) =>
        resolve({ code: error?.code ?? 0, details: error?.details ?? '' }),
      );
    });
  } finally {
    client.close();
  }
}

/** Protobuf field encoders, enough to build wrong-typed messages. */
export const wire = {
  /** A length-delimited field (wire type 2): strings, bytes, messages. */
  text(field: number, value: string): Buffer {
    const bytes = Buffer.from(value);
    return Buffer.concat([varint((field << 3) | 2), varint(bytes.length), bytes]);
  },
  /** A length-delimited field of raw bytes: a string field's bytes that need not be UTF-8. */
  bytes(field: number, value: Buffer): Buffer {
    return Buffer.concat([varint((field << 3) | 2), varint(value.length), value]);
  },
  /** A varint field (wire type 0): int32, bool, enums. */
  number(field: number, value: number): Buffer {
    return Buffer.concat([varint(field << 3), varint(value)]);
  },
};

function varint(value: number): Buffer {
  const bytes: number[] = [];
  let rest = value;
  while (rest > 0x7f) {
    bytes.push((rest & 0x7f) | 0x80);
    rest >>>= 7;
  }
  bytes.push(rest);
  return Buffer.from(bytes);
}
