import { performance } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';
import {
  ARGON2_PARAMETERS,
  hashPassword,
  hashPasswordWithScrypt,
  needsRehash,
  SCRYPT_PARAMETERS,
  UnreadableHashError,
  unmatchableHash,
  verifyPassword,
} from '../../src/services/members/password-hasher.js';

const LIGHT = { memoryCost: 1024, timeCost: 1, parallelism: 1 };
const LIGHT_SCRYPT = { N: 1024, r: 8, p: 1 };
/** The PHC header of an Argon2id hash and the lengths of its salt and output. */
const PHC = /^(\$argon2id\$v=19\$m=\d+,t=\d+,p=\d+)\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$/;
const SALT = 'c2FsdHNhbHRzYWx0c2FsdA'; // 16 bytes
const KEY = 'a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U'; // 32 bytes

describe('password hasher', () => {
  it('hashes new passwords with Argon2id m=19 MiB, t=2, p=1 in the PHC format', async () => {
    expect(ARGON2_PARAMETERS).toEqual({ memoryCost: 19456, timeCost: 2, parallelism: 1 });
    const hash = await hashPassword('1234');
    expect(hash).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/);
    expect(hash).not.toContain('1234');
    await expect(verifyPassword('1234', hash)).resolves.toBe(true);
    await expect(verifyPassword('12345', hash)).resolves.toBe(false);
    expect(needsRehash(hash)).toBe(false);
  });

  it('salts: the same password hashes differently every time', async () => {
    const [first, second] = await Promise.all([hashPassword('same', LIGHT), hashPassword('same', LIGHT)]);
    expect(first).not.toBe(second);
  });

  it('verifies with the parameters stored in the hash, not the current ones', async () => {
    const older = await hashPassword('pw', LIGHT);
    expect(older.startsWith('$argon2id$v=19$m=1024,t=1,p=1$')).toBe(true);
    await expect(verifyPassword('pw', older)).resolves.toBe(true);
    await expect(verifyPassword('pW', older)).resolves.toBe(false);
  });

  it('still verifies the scrypt hashes stored before Argon2id, with their own parameters', async () => {
    const legacy = await hashPasswordWithScrypt('1234');
    expect(legacy).toMatch(/^scrypt\$8192\$8\$10\$[A-Za-z0-9+/]{22}==\$[A-Za-z0-9+/]{43}=$/);
    expect(SCRYPT_PARAMETERS).toEqual({ N: 8192, r: 8, p: 10 });
    await expect(verifyPassword('1234', legacy)).resolves.toBe(true);
    await expect(verifyPassword('12345', legacy)).resolves.toBe(false);
    const lighter = await hashPasswordWithScrypt('caf\u00e9', LIGHT_SCRYPT);
    await expect(verifyPassword('cafe\u0301', lighter)).resolves.toBe(true); // NFKC on both paths
  });

  it('verifies scrypt hashes with any parameters within its bounds, a small N with many lanes too', async () => {
    // OpenSSL asks for 128·r·(N + p + 2) bytes, not 128·N·r: with p=64 and N=16 that is 2.6 times
    // as much, above a maxmem of 256·N·r.
    for (const parameters of [
      { N: 16, r: 8, p: 64 },
      { N: 2, r: 1, p: 64 },
    ]) {
      const stored = await hashPasswordWithScrypt('pw', parameters);
      await expect(verifyPassword('pw', stored)).resolves.toBe(true);
      await expect(verifyPassword('pW', stored)).resolves.toBe(false);
    }
  });

  it('asks for a new hash for scrypt and for weaker Argon2id, not for today or stronger', async () => {
    const current = ARGON2_PARAMETERS;
    expect(needsRehash(await hashPasswordWithScrypt('pw', LIGHT_SCRYPT), current)).toBe(true);
    expect(needsRehash(await hashPassword('pw', LIGHT), current)).toBe(true);
    expect(needsRehash(`$argon2id$v=19$m=19456,t=1,p=1$${SALT}$${KEY}`, current)).toBe(true);
    expect(needsRehash(`$argon2id$v=19$m=12288,t=2,p=1$${SALT}$${KEY}`, current)).toBe(true);
    expect(needsRehash(`$argon2id$v=19$m=19456,t=2,p=1$${SALT.slice(0, 11)}$${KEY}`, current)).toBe(true);
    expect(needsRehash(`$argon2id$v=19$m=19456,t=2,p=1$${SALT}$${KEY}`, current)).toBe(false);
    expect(needsRehash(`$argon2id$v=19$m=47104,t=3,p=1$${SALT}$${KEY}`, current)).toBe(false);
    expect(needsRehash(`$argon2id$v=19$m=1024,t=1,p=1$${SALT}$${KEY}`, LIGHT)).toBe(false);
  });

  it('no password matches the decoy used for unknown users', async () => {
    const decoy = unmatchableHash(LIGHT);
    await expect(verifyPassword('', decoy)).resolves.toBe(false);
    await expect(verifyPassword('1234', decoy)).resolves.toBe(false);
  });

  it('the decoy has the shape of a real hash and costs what verifying one costs', async () => {
    const real = await hashPassword('1234');
    const decoy = unmatchableHash();
    const [, realHeader, realSalt, realKey] = PHC.exec(real)!;
    const [, decoyHeader, decoySalt, decoyKey] = PHC.exec(decoy)!;
    expect([decoyHeader, decoySalt!.length, decoyKey!.length]).toEqual([
      realHeader,
      realSalt!.length,
      realKey!.length,
    ]);
    // CPU time of this process (the hash runs on its libuv threads), not wall time: on two shared
    // cores the wall time of a 12 ms hash ranges from 30 to 300 ms, its CPU time hardly moves.
    const cpu = { real: 0, decoy: 0 };
    for (let round = -1; round < 7; round++) {
      for (const [kind, stored] of [
        ['real', real],
        ['decoy', decoy],
      ] as const) {
        const before = process.cpuUsage();
        await verifyPassword('wrong password', stored);
        const used = process.cpuUsage(before);
        if (round >= 0) cpu[kind] += used.user + used.system; // round -1 warms both paths up
      }
    }
    const ratio = cpu.decoy / cpu.real;
    expect(ratio).toBeGreaterThan(0.5);
    expect(ratio).toBeLessThan(2);
  });

  it.each([
    ['plain text', '1234'],
    ['an unknown scheme', `bcrypt$8192$8$10$${SALT}==$${KEY}=`],
    ['a bcrypt hash', '$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW'],
    ['argon2i', `$argon2i$v=19$m=19456,t=2,p=1$${SALT}$${KEY}`],
    ['argon2d', `$argon2d$v=19$m=19456,t=2,p=1$${SALT}$${KEY}`],
    ['argon2id version 16', `$argon2id$v=16$m=19456,t=2,p=1$${SALT}$${KEY}`],
    ['argon2id without a version', `$argon2id$m=19456,t=2,p=1$${SALT}$${KEY}`],
    ['argon2id asking for 4 GiB', `$argon2id$v=19$m=4194304,t=2,p=1$${SALT}$${KEY}`],
    ['argon2id asking for 100 passes', `$argon2id$v=19$m=19456,t=100,p=1$${SALT}$${KEY}`],
    ['argon2id asking for 255 lanes', `$argon2id$v=19$m=19456,t=2,p=255$${SALT}$${KEY}`],
    ['argon2id asking for 8× the work', `$argon2id$v=19$m=65536,t=8,p=1$${SALT}$${KEY}`],
    ['argon2id with less memory than its lanes need', `$argon2id$v=19$m=4,t=2,p=1$${SALT}$${KEY}`],
    ['argon2id with an unknown parameter', `$argon2id$v=19$m=19456,t=2,p=1,keyid=AA$${SALT}$${KEY}`],
    ['argon2id with parameters in another order', `$argon2id$v=19$t=2,m=19456,p=1$${SALT}$${KEY}`],
    ['argon2id without a salt', `$argon2id$v=19$m=19456,t=2,p=1$${KEY}`],
    ['argon2id with a 4-byte salt', `$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$${KEY}`],
    ['argon2id with an 8-byte output', `$argon2id$v=19$m=19456,t=2,p=1$${SALT}$a2V5a2V5a2U`],
    ['argon2id with padded base64', `$argon2id$v=19$m=19456,t=2,p=1$${SALT}==$${KEY}=`],
    ['argon2id with base64 of an impossible length', `$argon2id$v=19$m=19456,t=2,p=1$${SALT}$${KEY}a2`],
    ['scrypt with N not a power of two', `scrypt$1000$8$1$${SALT}==$${KEY}=`],
    ['scrypt with a huge N', `scrypt$${2 ** 30}$8$1$${SALT}==$${KEY}=`],
    ['scrypt asking for 1 GiB (N=2^20, r=8)', `scrypt$${2 ** 20}$8$1$${SALT}==$${KEY}=`],
    ['scrypt asking for 256 MiB and a little more', `scrypt$${2 ** 18}$8$1$${SALT}==$${KEY}=`],
    ['scrypt asking for 100 times the legacy work in 128 MiB', `scrypt$${2 ** 15}$32$64$${SALT}==$${KEY}=`],
    ['scrypt asking for a little more than 2^22 of work', `scrypt$${2 ** 12}$17$61$${SALT}==$${KEY}=`],
    ['scrypt with an empty key, which would match anything', `scrypt$1024$8$1$${SALT}==$`],
    ['scrypt with a short key', `scrypt$1024$8$1$${SALT}==$a2V5`],
  ])('refuses a stored value that is %s, at once and saying why', async (_label, stored) => {
    const started = performance.now();
    const refusal = await verifyPassword('1234', stored).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(refusal).toBeInstanceOf(UnreadableHashError);
    expect((refusal as Error).message).toMatch(/^stored password hash /);
    expect((refusal as Error).message).not.toContain(SALT);
    expect(() => needsRehash(stored)).toThrow(UnreadableHashError);
    expect(performance.now() - started).toBeLessThan(500); // refused before any hashing
  });

  it('reads scrypt up to 2^22 of work (N×r×p)', () => {
    expect(needsRehash(`scrypt$${2 ** 16}$8$8$${SALT}==$${KEY}=`)).toBe(true);
  });

  it('names the parameter it refuses', async () => {
    await expect(verifyPassword('1234', `$argon2id$v=19$m=4194304,t=2,p=1$${SALT}$${KEY}`)).rejects.toThrow(
      'stored password hash refused: argon2id m=4194304 KiB is outside 8..65536',
    );
    await expect(verifyPassword('1234', `$argon2i$v=19$m=19456,t=2,p=1$${SALT}$${KEY}`)).rejects.toThrow(
      'stored password hash refused: argon2i is not read, only argon2id',
    );
    await expect(verifyPassword('1234', `scrypt$${2 ** 20}$32$1$${SALT}==$${KEY}=`)).rejects.toThrow(
      'stored password hash refused: scrypt N=1048576, r=32, p=1 needs 4097 MiB, above 256',
    );
    await expect(verifyPassword('1234', `scrypt$${2 ** 15}$32$64$${SALT}==$${KEY}=`)).rejects.toThrow(
      'stored password hash refused: scrypt N=32768, r=32, p=64 is N×r×p=67108864 of work, above 4194304',
    );
    await expect(verifyPassword('1234', '1234')).rejects.toThrow(
      'stored password hash is in no known format (neither $argon2id$… nor scrypt$…)',
    );
  });
});
