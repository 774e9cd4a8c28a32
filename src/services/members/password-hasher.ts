import { randomBytes, type ScryptOptions, scrypt, timingSafeEqual } from 'node:crypto';

/** scrypt's cost parameters, stored in every hash so that they can be raised later. */
export interface ScryptParameters {
  /** CPU/memory cost: a power of two. */
  readonly N: number;
  /** Block size. */
  readonly r: number;
  /** Parallelisation. */
  readonly p: number;
}

/**
 * The parameters new hashes use: N=2^13, r=8, p=10, equivalent in cost to OWASP's scrypt minimum
 * (N=2^17, r=8, p=1) but needing 8 MiB per hash instead of 128 MiB, so that a process with four
 * hashes running on the libuv pool stays under 100 MB of RSS.
 */
export const SCRYPT_PARAMETERS: ScryptParameters = Object.freeze({ N: 2 ** 13, r: 8, p: 10 });

const SALT_BYTES = 16;
const KEY_BYTES = 32;
const PREFIX = 'scrypt';

// Bounds on parameters read back from storage, so a corrupted or hostile row cannot ask for
// gigabytes of memory or minutes of CPU.
const MAX_N = 2 ** 20;
const MAX_R = 32;
const MAX_P = 64;
const MAX_MEMORY = 256 * 1024 * 1024;
const MIN_SALT_BYTES = 16;
const MIN_KEY_BYTES = 16;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/**
 * Hashes a password with a fresh random salt, off the event loop (async scrypt runs on the libuv
 * pool). The result is `scrypt$N$r$p$salt$key`, salt and key in base64: self-describing, so that
 * verification never depends on today's parameters.
 *
 * The password is normalised to NFKC first (NIST SP 800-63B), so that the same password typed on
 * systems that compose accented characters differently still matches.
 */
export async function hashPassword(
  password: string,
  parameters: ScryptParameters = SCRYPT_PARAMETERS,
): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const key = await deriveKey(password, salt, KEY_BYTES, parameters);
  return format(parameters, salt, key);
}

/**
 * Checks a password against a stored hash in constant time. Resolves false for a wrong password;
 * rejects if the stored value is not a hash this module can read (a fault of the store, not of the caller).
 */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const { parameters, salt, key } = parse(stored);
  const candidate = await deriveKey(password, salt, key.length, parameters);
  return timingSafeEqual(candidate, key);
}

/**
 * A well-formed hash that no password matches (its key is random). Verifying against it costs what
 * verifying a real hash costs, so signing in as an unknown user takes as long as a wrong password.
 */
export function unmatchableHash(parameters: ScryptParameters = SCRYPT_PARAMETERS): string {
  return format(parameters, randomBytes(SALT_BYTES), randomBytes(KEY_BYTES));
}

function format({ N, r, p }: ScryptParameters, salt: Buffer, key: Buffer): string {
  return [PREFIX, N, r, p, salt.toString('base64'), key.toString('base64')].join('$');
}

function parse(stored: string): { parameters: ScryptParameters; salt: Buffer; key: Buffer } {
  const parts = stored.split('$');
  const [prefix, n, r, p, salt, key] = parts;
  const parameters = { N: Number(n), r: Number(r), p: Number(p) };
  if (
    parts.length !== 6 ||
    prefix !== PREFIX ||
    !isWhole(parameters.N, 2, MAX_N) ||
    (parameters.N & (parameters.N - 1)) !== 0 ||
    !isWhole(parameters.r, 1, MAX_R) ||
    !isWhole(parameters.p, 1, MAX_P) ||
    !BASE64.test(salt ?? '') ||
    !BASE64.test(key ?? '')
  ) {
    throw new Error('stored password hash is not in the scrypt$N$r$p$salt$key format');
  }
  const saltBytes = Buffer.from(salt!, 'base64');
  const keyBytes = Buffer.from(key!, 'base64');
  // A short key would make the comparison meaningless (an empty one matches anything).
  if (saltBytes.length < MIN_SALT_BYTES || keyBytes.length < MIN_KEY_BYTES) {
    throw new Error('stored password hash has a salt or key too short to be trusted');
  }
  return { parameters, salt: saltBytes, key: keyBytes };
}

function isWhole(value: number, min: number, max: number): boolean {
  return Number.isInteger(value) && value >= min && value <= max;
}

function deriveKey(password: string, salt: Buffer, length: number, { N, r, p }: ScryptParameters) {
  // scrypt needs 128·N·r bytes; Node refuses above `maxmem` (32 MiB by default), so raise it to fit.
  const options: ScryptOptions = { N, r, p, maxmem: Math.min(MAX_MEMORY, 256 * N * r) };
  return new Promise<Buffer>((resolve, reject) => {
    scrypt(password.normalize('NFKC'), salt, length, options, (error, key) =>
      error ? reject(error) : resolve(key),
    );
  });
}
