import { BinaryReader } from '@bufbuild/protobuf/wire';
import {
  type Server,
  type ServerDuplexStream,
  type ServerUnaryCall,
  type ServiceDefinition,
  status,
  type UntypedHandleCall,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { ServiceError } from './service-error.js';
import { wrapHandlers } from './service-handlers.js';

/**
 * What a handler gets instead of its request when the bytes did not decode. grpc-js answers a
 * deserializer that throws with INTERNAL, as if the server had failed, and on a stream that has
 * more messages queued behind the bad one it was seen to leave the client without any status; a
 * request that decodes to this instead reaches the handler, which answers INVALID_ARGUMENT.
 */
export class MalformedRequest {
  constructor(
    /** What was wrong, safe to show the caller. */
    readonly problem: string,
  ) {}

  /** The caller's error: INVALID_ARGUMENT, with `prefix` before the problem when given. */
  toError(prefix = 'Invalid Parameters'): ServiceError {
    return new ServiceError(status.INVALID_ARGUMENT, `${prefix}: ${this.problem}`);
  }
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Decodes a string field's bytes, refusing invalid UTF-8 as proto3 requires. The reader's default
 * puts U+FFFD in place of each bad sequence, so that two different byte strings (two passwords, two
 * user names) could become the same text.
 */
function decodeUtf8Strictly(bytes: Uint8Array): string {
  return strictUtf8.decode(bytes);
}

function problemOf(error: unknown): string {
  if (
    error instanceof TypeError &&
    (error as { code?: string }).code === 'ERR_ENCODING_INVALID_ENCODED_DATA'
  ) {
    return 'a string field is not valid UTF-8';
  }
  // ts-proto reads 64-bit integers as JavaScript numbers and throws on one past 2^53 - 1 (a well-formed
  // message all the same: a uint64 revision of 2^64 - 1, say).
  if (
    error instanceof Error &&
    /^Value is (larger|smaller) than Number\.(MAX|MIN)_SAFE_INTEGER$/.test(error.message)
  ) {
    return 'a 64-bit integer field is beyond ±(2^53 - 1), the most this server reads';
  }
  return 'the request is not a well-formed protobuf message';
}

/**
 * Whether a deserializer reads from a BinaryReader it is handed, as ts-proto's do (they pass what
 * they get to the message's `decode`, which takes a reader or bytes). Others (protobuf-es's
 * `fromBinary`, a hand-written one) take bytes only: asked with a reader, they throw or hand it back.
 */
function readsFromReader(deserialize: (input: Buffer | BinaryReader) => unknown): boolean {
  const probe = new BinaryReader(new Uint8Array(0));
  try {
    const decoded = deserialize(probe);
    return (
      typeof decoded === 'object' && decoded !== null && decoded !== probe && !(decoded instanceof Uint8Array)
    );
  } catch {
    return false;
  }
}

/**
 * A service definition whose requests never fail to decode in grpc-js: bytes that the decoder
 * refuses (a length past the end, a varint too long, a wire type that does not exist) decode to a
 * {@link MalformedRequest}, for the handler to refuse. What the decoder accepts passes as it reads
 * it: ts-proto's stops at a zero tag, as protobuf decoders may, keeping the fields before it. Where
 * the deserializer reads from a BinaryReader (ts-proto's), it gets one that refuses a string field
 * that is not valid UTF-8 too; protobuf-es's `fromBinary` already refuses it in proto3 messages.
 */
export function strictRequests<Definition extends ServiceDefinition>(definition: Definition): Definition {
  const methods = Object.entries(definition).map(([name, method]) => {
    const deserialize = method.requestDeserialize as (input: Buffer | BinaryReader) => unknown;
    const decode = readsFromReader(deserialize)
      ? (bytes: Buffer) => deserialize(new BinaryReader(bytes, decodeUtf8Strictly))
      : deserialize;
    const requestDeserialize = (bytes: Buffer): unknown => {
      try {
        return decode(bytes);
      } catch (error) {
        return new MalformedRequest(problemOf(error));
      }
    };
    return [name, { ...method, requestDeserialize }];
  });
  return Object.fromEntries(methods) as Definition;
}

/**
 * The server as a library that adds its own service sees it (grpc-health-check's and
 * @grpc/reflection's `addToServer`): every service added through it is made strict
 * ({@link strictRequests}), and its handlers, which know nothing of {@link MalformedRequest}, never
 * see one: a request that did not decode ends the call with INVALID_ARGUMENT, as on the shop's own
 * methods, instead of grpc-js's INTERNAL "Error deserializing request".
 */
export function strictServer(server: Pick<Server, 'addService'>): Server {
  // Typed as the Server the libraries' addToServer takes: they use only its addService.
  const adder: Pick<Server, 'addService'> = {
    addService(definition: ServiceDefinition, implementation: UntypedServiceImplementation): void {
      const guarded = wrapHandlers(definition, implementation, (handler, method) =>
        method.requestStream
          ? refusingMalformedMessages(handler)
          : refusingMalformedRequest(handler, method.responseStream),
      );
      server.addService(strictRequests(definition), guarded);
    },
  };
  return adder as Server;
}

type CallbackOfUnary = (error: { code: number; details: string }) => void;

/** A unary or server-streaming handler that answers a request that did not decode itself. */
function refusingMalformedRequest(handler: UntypedHandleCall, streamsAnswers: boolean): UntypedHandleCall {
  return ((call: ServerUnaryCall<unknown, unknown>, callback?: CallbackOfUnary) => {
    if (!(call.request instanceof MalformedRequest)) {
      (handler as (call: unknown, callback?: unknown) => void)(call, callback);
      return;
    }
    const refusal = toStatus(call.request);
    if (streamsAnswers) call.emit('error', refusal);
    else callback?.(refusal);
  }) as UntypedHandleCall;
}

/**
 * A client- or bidi-streaming handler whose 'data' listeners only hear messages that decoded: the
 * first that did not ends the call with INVALID_ARGUMENT, and none after it is heard.
 */
function refusingMalformedMessages(handler: UntypedHandleCall): UntypedHandleCall {
  return ((call: ServerDuplexStream<unknown, unknown>) => {
    let refused = false;
    const listen = call.on.bind(call);
    call.on = ((event: string | symbol, listener: (...args: unknown[]) => void) => {
      if (event !== 'data') return listen(event, listener);
      return listen('data', (message: unknown) => {
        if (refused) return;
        if (!(message instanceof MalformedRequest)) {
          listener(message);
          return;
        }
        refused = true;
        call.emit('error', toStatus(message));
      });
    }) as typeof call.on;
    (handler as (call: unknown) => void)(call);
  }) as UntypedHandleCall;
}

function toStatus(request: MalformedRequest): { code: number; details: string } {
  const error = request.toError('invalid request');
  return { code: error.code, details: error.message };
}
