/**
 * Field and parameter names whose values never reach a log: passwords (the book's `password` and
 * `passwordConfirm`), tokens, secrets, keys, credentials, cookies. Matched without regard to case,
 * anywhere in the name (`newPassword`, `registryToken`, `x-api-key`).
 */
const SECRET_NAME = /pass(?:word|wd)?|token|secret|api[-_]?key|authorization|credential|cookie|session/i;

/** What a secret is replaced with. */
export const REDACTED = '[redacted]';

/** Whether a field or parameter name is one whose value must not be logged. */
export function isSecretName(name: string): boolean {
  return SECRET_NAME.test(name);
}

/**
 * A URL (or a path with a query) with the values of its secret query parameters replaced:
 * `/members?username=ada&password=1234` → `/members?username=ada&password=[redacted]`. Parameter
 * names are compared decoded (`pass%77ord` is `password`); the rest is kept as it came.
 */
export function redactUrl(url: string): string {
  const queryStart = url.indexOf('?');
  if (queryStart < 0) return url;
  const fragmentStart = url.indexOf('#', queryStart);
  const query = url.slice(queryStart + 1, fragmentStart < 0 ? undefined : fragmentStart);
  let changed = false;
  const parameters = query.split('&').map((parameter) => {
    const equals = parameter.indexOf('=');
    const name = decodeName(equals < 0 ? parameter : parameter.slice(0, equals));
    if (equals < 0 || !isSecretName(name)) return parameter;
    changed = true;
    return `${parameter.slice(0, equals)}=${REDACTED}`;
  });
  if (!changed) return url;
  const fragment = fragmentStart < 0 ? '' : url.slice(fragmentStart);
  return `${url.slice(0, queryStart)}?${parameters.join('&')}${fragment}`;
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
