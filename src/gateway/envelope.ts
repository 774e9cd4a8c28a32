/**
 * The book's response envelope: every routed answer is one JSON object starting with `key` (the
 * request's number), `errorcode` (0 success, 1 failure) and `errormessage` ("success" on success).
 * An answer to a request that matched no route has no key: `"key":null`.
 */

/**
 * Bytes a rendered response leaves free at its start for the envelope's head,
 * `{"key":N,"errorcode":0,"errormessage":"success"` (46 bytes and the key's digits: at most 62 for
 * a key below 2^53), so that the body is made in one buffer, without copying the fields again.
 */
export const ENVELOPE_ROOM = 64;

const SUCCESS_TAIL = ',"errorcode":0,"errormessage":"success"';

/**
 * Completes a success body in place: `rendered` holds {@link ENVELOPE_ROOM} free bytes, then the
 * response fields as JSON (`,"name":value…`), then the closing `}`. Returns the whole body, a view of
 * `rendered`.
 */
export function successBody(key: number, rendered: Buffer): Buffer {
  const head = `{"key":${key}${SUCCESS_TAIL}`;
  const start = ENVELOPE_ROOM - head.length;
  if (start < 0) return Buffer.concat([Buffer.from(head, 'latin1'), rendered.subarray(ENVELOPE_ROOM)]);
  rendered.write(head, start, 'latin1');
  return rendered.subarray(start);
}

/** `{"key":N|null,"errorcode":1,"errormessage":"…"}`. */
export function errorBody(key: number | null, message: string): Buffer {
  return Buffer.from(`{"key":${key},"errorcode":1,"errormessage":${JSON.stringify(message)}}`);
}
