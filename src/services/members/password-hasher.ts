import { randomBytes, type ScryptOptions, scrypt, timingSafeEqual } from 'node:crypto';
import { type Algorithm, hash as argon2Hash, verify as argon2Verify } from '@node-rs/argon2';

/** Argon2id's cost parameters, written into every hash (PHC string) so that they can be raised later. */
export interface Argon2Parameters {
  /** Memory per hash in KiB (`m=`). */
  readonly memoryCost: number;
  /** Passes over that memory (`t=`). */
  readonly timeCost: number;
  /** Lanes (`p=`). */
  readonly parallelism: number;
}

/**
 * The parameters new hashes use: Argon2id with m=19 MiB, t=2, p=1, OWASP's first recommendation
 * (Password Storage Cheat Sheet), as strong by its table as the scrypt parameters below and about
 * 13× cheaper in CPU here (about 12 ms a check instead of 165 ms). Two checks at once need 38 MiB.
 */
export const ARGON2_PARAMETERS: Argon2Parameters = Object.freeze({
  memoryCost: 19 * 1024,
  timeCost: 2,
  parallelism: 1,
});

/** scrypt's cost parameters, as stored in the hashes written before Argon2id. */
export interface ScryptParameters {
  /** CPU/memory cost: a power of two. */
  readonly N: number;
  /** Block size. */
  readonly r: number;
  /** Parallelisation. */
  readonly p: number;
}

/**
 * The parameters hashes were written with before Argon2id: N=2^13, r=8, p=10, equivalent in cost to
 * OWASP's scrypt minimum. Such hashes are still verified, and replaced at the next successful sign-in.
 */
export const SCRYPT_PARAMETERS: ScryptParameters = Object.freeze({ N: 2 ** 13, r: 8, p: 10 });

/**
 * A stored value that is not a hash this module will check: unknown format, or parameters out of
 * bounds. It is a fault of the store, never of the caller; the message says what was refused, and
 * never contains the stored value.
 */
export class UnreadableHashError extends Error {
  override readonly name = 'UnreadableHashError';
  /** The account whose hash it is, set by the caller that knows it, so that the log names the row. */
  memberId: number | undefined;
}

const SALT_BYTES = 16;
const KEY_BYTES = 32;

const ARGON2_PREFIX = '$argon2id$';
/** `Algorithm.Argon2id`: the package declares a const enum, which verbatimModuleSyntax cannot read. */
const ARGON2ID = 2 as Algorithm;
const ARGON2_VERSION = 19;
const ARGON2_FORMAT =
  /^\$argon2id\$v=(\d{1,10})\$m=(\d{1,10}),t=(\d{1,10}),p=(\d{1,3})\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$/;
// Bounds on Argon2id parameters read back from storage, so that a corrupted or hostile row cannot
// make one check take 64 MiB and several times today's CPU, nor a short output match by chance.
const ARGON2_MAX_MEMORY_KIB = 64 * 1024;
const ARGON2_MAX_TIME_COST = 8;
const ARGON2_MAX_PARALLELISM = 4;
/** memoryCost × timeCost: about 6.7 times today's work (19 MiB × 2). */
const ARGON2_MAX_WORK = 2 ** 18;
const ARGON2_MIN_SALT_BYTES = 8;
const ARGON2_MAX_SALT_BYTES = 64;
const ARGON2_MIN_KEY_BYTES = 16;
const ARGON2_MAX_KEY_BYTES = 64;

const SCRYPT_PREFIX = 'scrypt';
// Bounds on scrypt parameters read back from storage, for the same reason.
const SCRYPT_MAX_N = 2 ** 20;
const SCRYPT_MAX_R = 32;
const SCRYPT_MAX_P = 64;
const SCRYPT_MAX_MEMORY = 256 * 1024 * 1024;
/**
 * N × r × p, which the time of one check follows: 2^22 is 6.4 times the legacy parameters' work
 * (measured 6.3 times their time: about a second where they take 165 ms), as Argon2id's bound is
 * about 6.7 times today's. Within the memory bound
 * alone, N=2^15, r=32, p=64 takes 128 MiB and about 16 s a check.
 */
const SCRYPT_MAX_WORK = 2 ** 22;
const SCRYPT_MIN_SALT_BYTES = 16;
const SCRYPT_MIN_KEY_BYTES = 16;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/**
 * Hashes a password with Argon2id and a fresh random salt, off the event loop (on the libuv pool).
 * The result is the PHC string `$argon2id$v=19$m=…,t=…,p=…$salt$hash`: self-describing, so that
 * verification never depends on today's parameters.
 *
 * The password is normalised to NFKC first (NIST SP 800-63B), so that the same password typed on
 * systems that compose accented characters differently still matches.
 */
export function hashPassword(
  password: string,
  { memoryCost, timeCost, parallelism }: Argon2Parameters = ARGON2_PARAMETERS,
): Promise<string> {
  return argon2Hash(password.normalize('NFKC'), {
    algorithm: ARGON2ID,
    memoryCost,
    timeCost,
    parallelism,
    outputLen: KEY_BYTES,
    salt: randomBytes(SALT_BYTES),
  });
}

/**
 * Hashes a password the way the service did before Argon2id: `scrypt$N$r$p$salt$key`, salt and key
 * in base64. Nothing stores new scrypt hashes; this makes the old ones for tests and the bench.
 */
export async function hashPasswordWithScrypt(
  password: string,
  parameters: ScryptParameters = SCRYPT_PARAMETERS,
): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const key = await deriveScryptKey(password, salt, KEY_BYTES, parameters);
  return formatScrypt(parameters, salt, key);
}

/**
 * Checks a password against a stored hash, Argon2id or scrypt, in constant time. Resolves false for
 * a wrong password; rejects with UnreadableHashError if the stored value is not a hash this module
 * reads, or asks for more work than it allows.
 */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  if (stored.startsWith(ARGON2_PREFIX)) {
    parseArgon2(stored);
    try {
      return await argon2Verify(stored, password.normalize('NFKC'));
    } catch (error) {
      throw new UnreadableHashError('stored password hash refused by argon2', { cause: error });
    }
  }
  const { parameters, salt, key } = parseScrypt(stored);
  const candidate = await deriveScryptKey(password, salt, key.length, parameters);
  return timingSafeEqual(candidate, key);
}

/**
 * Whether a stored hash should be replaced by one made with `current` once the password is known:
 * every scrypt hash, and Argon2id hashes with less memory, fewer passes, a shorter salt or output.
 * Throws UnreadableHashError as {@link verifyPassword} does.
 */
export function needsRehash(stored: string, current: Argon2Parameters = ARGON2_PARAMETERS): boolean {
  if (!stored.startsWith(ARGON2_PREFIX)) {
    parseScrypt(stored);
    return true;
  }
  const { parameters, saltBytes, keyBytes } = parseArgon2(stored);
  return (
    parameters.memoryCost < current.memoryCost ||
    parameters.timeCost < current.timeCost ||
    saltBytes < SALT_BYTES ||
    keyBytes < KEY_BYTES
  );
}

/**
 * A well-formed Argon2id hash that no password matches (its output is random). Verifying against it
 * costs what verifying a real hash with the same parameters costs, so signing in as an unknown user
 * takes as long as a wrong password.
 */
export function unmatchableHash(parameters: Argon2Parameters = ARGON2_PARAMETERS): string {
  const { memoryCost, timeCost, parallelism } = parameters;
  const encode = (bytes: Buffer) => bytes.toString('base64').replace(/=+$/, '');
  return `${ARGON2_PREFIX}v=${ARGON2_VERSION}$m=${memoryCost},t=${timeCost},p=${parallelism}$${encode(randomBytes(SALT_BYTES))}$${encode(randomBytes(KEY_BYTES))}`;
}

function parseArgon2(stored: string): { parameters: Argon2Parameters; saltBytes: number; keyBytes: number } {
  const match = ARGON2_FORMAT.exec(stored);
  // Unpadded base64 is never 1 more than a multiple of 4 characters long.
  if (!match || match[5]!.length % 4 === 1 || match[6]!.length % 4 === 1) {
    throw new UnreadableHashError(
      'stored password hash is not in the $argon2id$v=19$m=…,t=…,p=…$salt$hash format',
    );
  }
  const [, version, m, t, p, salt, key] = match.map(String);
  const [memoryCost, timeCost, parallelism] = [m, t, p].map(Number) as [number, number, number];
  const refuse = (what: string) => new UnreadableHashError(`stored password hash refused: argon2id ${what}`);
  if (Number(version) !== ARGON2_VERSION) throw refuse(`version ${version}, only ${ARGON2_VERSION} is read`);
  if (!isWhole(parallelism, 1, ARGON2_MAX_PARALLELISM)) {
    throw refuse(`p=${parallelism} is outside 1..${ARGON2_MAX_PARALLELISM}`);
  }
  if (!isWhole(memoryCost, 8 * parallelism, ARGON2_MAX_MEMORY_KIB)) {
    throw refuse(`m=${memoryCost} KiB is outside ${8 * parallelism}..${ARGON2_MAX_MEMORY_KIB}`);
  }
  if (!isWhole(timeCost, 1, ARGON2_MAX_TIME_COST)) {
    throw refuse(`t=${timeCost} is outside 1..${ARGON2_MAX_TIME_COST}`);
  }
  if (memoryCost * timeCost > ARGON2_MAX_WORK) {
    throw refuse(`m×t=${memoryCost * timeCost} is above ${ARGON2_MAX_WORK}`);
  }
  const saltBytes = base64Length(salt!);
  const keyBytes = base64Length(key!);
  if (!isWhole(saltBytes, ARGON2_MIN_SALT_BYTES, ARGON2_MAX_SALT_BYTES)) {
    throw refuse(`salt of ${saltBytes} bytes is outside ${ARGON2_MIN_SALT_BYTES}..${ARGON2_MAX_SALT_BYTES}`);
  }
  // A short output would make a match by chance feasible.
  if (!isWhole(keyBytes, ARGON2_MIN_KEY_BYTES, ARGON2_MAX_KEY_BYTES)) {
    throw refuse(`hash of ${keyBytes} bytes is outside ${ARGON2_MIN_KEY_BYTES}..${ARGON2_MAX_KEY_BYTES}`);
  }
  return { parameters: { memoryCost, timeCost, parallelism }, saltBytes, keyBytes };
}

/** The byte length of unpadded base64 text (the PHC encoding). */
function base64Length(text: string): number {
  return Math.floor((text.length * 3) / 4);
}

function formatScrypt({ N, r, p }: ScryptParameters, salt: Buffer, key: Buffer): string {
  return [SCRYPT_PREFIX, N, r, p, salt.toString('base64'), key.toString('base64')].join('$');
}

function parseScrypt(stored: string): { parameters: ScryptParameters; salt: Buffer; key: Buffer } {
  const parts = stored.split('$');
  const [prefix, n, r, p, salt, key] = parts;
  if (prefix !== SCRYPT_PREFIX) {
    const scheme = /^\$(argon2(?:i|d))\$/.exec(stored)?.[1];
    throw new UnreadableHashError(
      scheme
        ? `stored password hash refused: ${scheme} is not read, only argon2id`
        : 'stored password hash is in no known format (neither $argon2id$… nor scrypt$…)',
    );
  }
  const parameters = { N: Number(n), r: Number(r), p: Number(p) };
  if (
    parts.length !== 6 ||
    !isWhole(parameters.N, 2, SCRYPT_MAX_N) ||
    (parameters.N & (parameters.N - 1)) !== 0 ||
    !isWhole(parameters.r, 1, SCRYPT_MAX_R) ||
    !isWhole(parameters.p, 1, SCRYPT_MAX_P) ||
    !BASE64.test(salt ?? '') ||
    !BASE64.test(key ?? '')
  ) {
    throw new UnreadableHashError(
      'stored password hash is not in the scrypt$N$r$p$salt$key format, or its parameters are out of bounds',
    );
  }
  // Each bound alone admits combinations (N=2^20 with r=8, or p=64 with a small N) that OpenSSL
  // would refuse for memory: refused here instead, as unreadable, so that the log names the row.
  const memory = scryptMemory(parameters);
  if (memory > SCRYPT_MAX_MEMORY) {
    throw new UnreadableHashError(
      `stored password hash refused: scrypt N=${parameters.N}, r=${parameters.r}, p=${parameters.p} needs ${Math.ceil(memory / 2 ** 20)} MiB, above ${SCRYPT_MAX_MEMORY / 2 ** 20}`,
    );
  }
  const work = parameters.N * parameters.r * parameters.p;
  if (work > SCRYPT_MAX_WORK) {
    throw new UnreadableHashError(
      `stored password hash refused: scrypt N=${parameters.N}, r=${parameters.r}, p=${parameters.p} is N×r×p=${work} of work, above ${SCRYPT_MAX_WORK}`,
    );
  }
  const saltBytes = Buffer.from(salt!, 'base64');
  const keyBytes = Buffer.from(key!, 'base64');
  // A short key would make the comparison meaningless (an empty one matches anything).
  if (saltBytes.length < SCRYPT_MIN_SALT_BYTES || keyBytes.length < SCRYPT_MIN_KEY_BYTES) {
    throw new UnreadableHashError('stored password hash has a salt or key too short to be trusted');
  }
  return { parameters, salt: saltBytes, key: keyBytes };
}

function isWhole(value: number, min: number, max: number): boolean {
  return Number.isInteger(value) && value >= min && value <= max;
}

/**
 * The memory OpenSSL's scrypt asks for, which it checks against `maxmem`: 128·r·p for B and
 * 128·r·(N + 2) for V (crypto/kdf/scrypt.c).
 */
function scryptMemory({ N, r, p }: ScryptParameters): number {
  return 128 * r * (N + p + 2);
}

function deriveScryptKey(password: string, salt: Buffer, length: number, parameters: ScryptParameters) {
  const { N, r, p } = parameters;
  // Node refuses above `maxmem` (32 MiB by default): raised to what these parameters need, which
  // parseScrypt has bounded.
  const options: ScryptOptions = { N, r, p, maxmem: scryptMemory(parameters) };
  return new Promise<Buffer>((resolve, reject) => {
    scrypt(password.normalize('NFKC'), salt, length, options, (error, key) =>
      error ? reject(error) : resolve(key),
    );
  });
}
