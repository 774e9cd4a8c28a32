/**
 * Field and parameter names whose values never reach a log: passwords (the book's `password` and
 * `passwordConfirm`), tokens, secrets, keys, credentials, cookies, and the registry token's proofs
 * (`x-shop-registry-proof`, which opens a Watch or its node's Register for 5 minutes, from the
 * address and port it names). Matched without regard to case, anywhere in the name (`newPassword`,
 * `registryToken`, `x-api-key`).
 */
const SECRET_NAME =
  /pass(?:word|wd)?|token|secret|api[-_]?key|authorization|credential|cookie|session|proof/i;

/** What a secret is replaced with. */
export const REDACTED = '[redacted]';

/** Whether a field or parameter name is one whose value must not be logged. */
export function isSecretName(name: string): boolean {
  return SECRET_NAME.test(name);
}

/** The user information of an absolute URL: `user:password` in `http://user:password@host/`. */
const USERINFO = /^([A-Za-z][A-Za-z0-9+.-]*:\/\/)[^/?#]*@/;

/**
 * A URL (or a path with a query) with the values of its secret query parameters replaced:
 * `/members?username=ada&password=1234` → `/members?username=ada&password=[redacted]`. Parameter
 * names are compared decoded (`pass%77ord` is `password`); the rest is kept as it came, but for
 * the user information of an absolute URL (`http://[redacted]@host/...`).
 *
 * Everything after the first `?` is the query, a `#` included: a request target carries no
 * fragment, and the gateway reads a `#` sent in one as part of a parameter (URLSearchParams), so
 * `?username=bob#1&password=…` signs in with that password and `?password=ab#cd` with `ab#cd`.
 * Taking `#` for the start of a fragment would log those passwords, or their ends, in clear.
 */
export function redactUrl(target: string): string {
  // An absolute-form target may carry credentials before its host (http://user:pass@host/...):
  // Node's HTTP server takes one as it came, and the gateway answers it.
  const url = target.replace(USERINFO, `$1${REDACTED}@`);
  const queryStart = url.indexOf('?');
  if (queryStart < 0) return url;
  let changed = false;
  const parameters = url
    .slice(queryStart + 1)
    .split('&')
    .map((parameter) => {
      const equals = parameter.indexOf('=');
      const name = decodeName(equals < 0 ? parameter : parameter.slice(0, equals));
      if (equals < 0 || !isSecretName(name)) return parameter;
      changed = true;
      return `${parameter.slice(0, equals)}=${REDACTED}`;
    });
  if (!changed) return url;
  return `${url.slice(0, queryStart)}?${parameters.join('&')}`;
}

function decodeName(name: string): string {
  try {
    return decodeURIComponent(name.replace(/\+/g, ' '));
  } catch {
    return name;
  }
}

/**
 * pino redaction paths for the secret fields the shop knows, at the top of a line and up to two
 * objects deep (`{ request: { password } }`, `{ req: { body: { password } } }`), and request
 * headers that carry credentials.
 */
export const REDACT_PATHS: readonly string[] = [
  ...[
    'password',
    'passwordConfirm',
    'token',
    'registryToken',
    'accessToken',
    'refreshToken',
    'secret',
    'apiKey',
    'authorization',
  ].flatMap((field) => [field, `*.${field}`, `*.*.${field}`]),
  'req.headers.cookie',
  'headers.cookie',
  '*.headers.cookie',
  'headers["x-api-key"]',
  '*.headers["x-api-key"]',
];

/**
 * Parts of database messages that quote a row's value: MySQL's "Duplicate entry 'alice' for key
 * 'members_username'" (ER_DUP_ENTRY) and "Incorrect string value: '\xF0...' for column ..."
 * (ER_TRUNCATED_WRONG_VALUE_FOR_FIELD) repeat what a user sent. The quoted value is matched
 * greedily up to the last closing text on purpose: a value that itself holds "' for key '" can make
 * a stack lose a few frames to the redaction, but never show part of the value.
 */
const QUOTED_VALUES: ReadonlyArray<readonly [RegExp, string]> = [
  [/Duplicate entry '[\s\S]*' for key '/g, `Duplicate entry ${REDACTED} for key '`],
  [/(Incorrect [\w ]+ value): '[\s\S]*' for column /g, `$1: ${REDACTED} for column `],
];

/**
 * `text` with the values that database messages quote replaced, keeping the rest (the error code,
 * the key or column): enough to know which constraint failed, nothing of whose data it was.
 */
export function redactDatabaseValues(text: string): string {
  let redacted = text;
  for (const [pattern, replacement] of QUOTED_VALUES) redacted = redacted.replace(pattern, replacement);
  return redacted;
}

/**
 * A serialized error (pino's `err` field) with every string in it passed through
 * {@link redactDatabaseValues}: the value shows in `message`, `sqlMessage` and `stack` alike, and in
 * those of nested errors. An object with a toJSON (a Date, a Buffer, grpc-js's Metadata) is taken
 * as it would be written, as JSON.stringify takes it: copied field by field, it lost what it holds.
 */
export function redactErrorFields(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return redactDatabaseValues(value);
  if (value === null || typeof value !== 'object' || depth > 4) return value;
  if (typeof (value as { toJSON?: unknown }).toJSON === 'function')
    return redactErrorFields((value as { toJSON(): unknown }).toJSON(), depth + 1);
  if (Array.isArray(value)) return value.map((item) => redactErrorFields(item, depth + 1));
  const copy: Record<string, unknown> = {};
  for (const key in value) copy[key] = redactErrorFields((value as Record<string, unknown>)[key], depth + 1);
  return copy;
}
