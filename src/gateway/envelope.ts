/**
 * The book's response envelope: every routed answer is one JSON object starting with `key` (the
 * request's number), `errorcode` (0 success, 1 failure) and `errormessage` ("success" on success).
 * An answer to a request that matched no route has no key: `"key":null`.
 */

const SUCCESS_TAIL = ',"errorcode":0,"errormessage":"success"';
const CLOSE = Buffer.from('}');

/** `{"key":N,"errorcode":0,"errormessage":"success"` + the rendered response fields + `}`. */
export function successBody(key: number, fields: Buffer): Buffer {
  const head = Buffer.from(`{"key":${key}${SUCCESS_TAIL}`, 'latin1');
  return fields.length === 0 ? Buffer.concat([head, CLOSE]) : Buffer.concat([head, fields, CLOSE]);
}

/** `{"key":N|null,"errorcode":1,"errormessage":"…"}`. */
export function errorBody(key: number | null, message: string): Buffer {
  return Buffer.from(`{"key":${key},"errorcode":1,"errormessage":${JSON.stringify(message)}}`);
}
