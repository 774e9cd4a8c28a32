/**
 * The idempotency key of a write, as the gateway takes it (the `Idempotency-Key` HTTP header) and
 * hands it to a service (gRPC metadata of the same name, lower case as HTTP/2 wants it). The rules
 * live here so that both ends accept exactly the same keys.
 */

/** The gRPC metadata a service reads the key from. */
export const IDEMPOTENCY_KEY_METADATA = 'idempotency-key';

/** The longest key accepted, in characters (one byte each: keys are ASCII). */
export const IDEMPOTENCY_KEY_MAX_LENGTH = 255;

/** 1 to 255 visible ASCII characters: no space, no control character, nothing beyond U+007E. */
const VALID_KEY = /^[\x21-\x7e]{1,255}$/;

/** What is wrong with a key that is refused, in words a client can act on. */
export const INVALID_IDEMPOTENCY_KEY = `Idempotency-Key must be sent once, as 1 to ${IDEMPOTENCY_KEY_MAX_LENGTH} visible ASCII characters (no spaces)`;

/** Whether `value` is an acceptable idempotency key. */
export function isValidIdempotencyKey(value: string): boolean {
  return VALID_KEY.test(value);
}
