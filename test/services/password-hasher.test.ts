import { describe, expect, it } from 'vitest';
import {
  hashPassword,
  SCRYPT_PARAMETERS,
  unmatchableHash,
  verifyPassword,
} from '../../src/services/members/password-hasher.js';

const LIGHT = { N: 1024, r: 8, p: 1 };

describe('password hasher', () => {
  it('uses N=2^13, r=8, p=10 by default and writes them into the hash', async () => {
    expect(SCRYPT_PARAMETERS).toEqual({ N: 8192, r: 8, p: 10 });
    const hash = await hashPassword('1234');
    expect(hash).toMatch(/^scrypt\$8192\$8\$10\$[A-Za-z0-9+/]{22}==\$[A-Za-z0-9+/]{43}=$/);
    expect(hash).not.toContain('1234');
    await expect(verifyPassword('1234', hash)).resolves.toBe(true);
    await expect(verifyPassword('12345', hash)).resolves.toBe(false);
  });

  it('salts: the same password hashes differently every time', async () => {
    const [first, second] = await Promise.all([hashPassword('same', LIGHT), hashPassword('same', LIGHT)]);
    expect(first).not.toBe(second);
  });

  it('verifies with the parameters stored in the hash, not the current ones', async () => {
    const older = await hashPassword('pw', LIGHT);
    expect(older.startsWith('scrypt$1024$8$1$')).toBe(true);
    await expect(verifyPassword('pw', older)).resolves.toBe(true);
  });

  it('no password matches the decoy used for unknown users', async () => {
    const decoy = unmatchableHash(LIGHT);
    await expect(verifyPassword('', decoy)).resolves.toBe(false);
    await expect(verifyPassword('1234', decoy)).resolves.toBe(false);
  });

  it.each([
    ['plain text', '1234'],
    [
      'an unknown scheme',
      'bcrypt$8192$8$10$c2FsdHNhbHRzYWx0c2FsdA==$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U=',
    ],
    [
      'N not a power of two',
      'scrypt$1000$8$1$c2FsdHNhbHRzYWx0c2FsdA==$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U=',
    ],
    ['a huge N', `scrypt$${2 ** 30}$8$1$c2FsdHNhbHRzYWx0c2FsdA==$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U=`],
    ['an empty key, which would match anything', 'scrypt$1024$8$1$c2FsdHNhbHRzYWx0c2FsdA==$'],
    ['a short key', 'scrypt$1024$8$1$c2FsdHNhbHRzYWx0c2FsdA==$a2V5'],
  ])('refuses a stored value that is %s', async (_label, stored) => {
    await expect(verifyPassword('1234', stored)).rejects.toThrow(/stored password hash/);
  });
});
