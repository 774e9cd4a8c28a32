import type { IncomingMessage } from 'node:http';
import { Metadata } from '@grpc/grpc-js';
import {
  IDEMPOTENCY_KEY_METADATA,
  INVALID_IDEMPOTENCY_KEY,
  isValidIdempotencyKey,
} from '../common/idempotency-key.js';
import { GatewayError } from './gateway-error.js';

/** The methods whose `Idempotency-Key` is carried: the writes. On any other method it is ignored. */
export const KEYED_METHODS: ReadonlySet<string> = new Set(['POST', 'DELETE']);

/**
 * The `Idempotency-Key` of a request: the key, undefined when there is none (or the method is not a
 * write), or the 400 a malformed key gets (not 1 to 255 visible ASCII characters, or sent twice).
 * The service makes a keyed write at most once and answers repeats with the first outcome; that is
 * also what lets the gateway retry a keyed POST elsewhere, like a GET.
 */
export function idempotencyKeyOf(request: IncomingMessage): string | GatewayError | undefined {
  if (!KEYED_METHODS.has(request.method ?? '')) return undefined;
  const values = request.headersDistinct[IDEMPOTENCY_KEY_METADATA];
  if (values === undefined) return undefined;
  const [key] = values;
  if (values.length !== 1 || key === undefined || !isValidIdempotencyKey(key)) {
    return new GatewayError(400, INVALID_IDEMPOTENCY_KEY);
  }
  return key;
}

/** The metadata of an upstream call: `idempotency-key` when the request has one. */
export function callMetadata(idempotencyKey: string | undefined): Metadata {
  const metadata = new Metadata();
  if (idempotencyKey !== undefined) metadata.set(IDEMPOTENCY_KEY_METADATA, idempotencyKey);
  return metadata;
}
