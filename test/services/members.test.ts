import { Writable } from 'node:stream';
import { status } from '@grpc/grpc-js';
import { type Logger, pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type CreateMemberRequest,
  MembersServiceClient,
  type SignInRequest,
} from '../../src/gen/services.js';
import { createServiceServer } from '../../src/services/common/service-server.js';
import { TOO_MANY_SIGN_INS } from '../../src/services/members/hashing-limiter.js';
import { MEMBERS_LIMITS, type MembersHandlersOptions } from '../../src/services/members/members-handlers.js';
import { membersService } from '../../src/services/members/members-service.js';
import type { MembersStore } from '../../src/services/members/members-store.js';
import { SCRYPT_PARAMETERS, type ScryptParameters } from '../../src/services/members/password-hasher.js';
import { backendsOf, type OpenedStore } from './support/backends.js';
import { callRaw, wire } from './support/raw-call.js';
import { call, startTestServer, type TestServer } from './support/test-server.js';
import { firstCharacters, TRICKY_STRINGS } from './support/tricky-strings.js';

/**
 * Cheap scrypt parameters for the tests that hash a lot: these test the service and its storage, not
 * the cost of hashing, and the machine has two shared cores. The stored value carries the parameters,
 * so the code path is the one production runs; one test below checks the production parameters.
 */
const TEST_HASH_PARAMETERS: ScryptParameters = { N: 1024, r: 8, p: 1 };

const INVALID = { code: status.INVALID_ARGUMENT, details: 'Invalid Parameters' };
const DENIED = { code: status.UNAUTHENTICATED, details: 'Invalid password' };
const TAKEN = { code: status.ALREADY_EXISTS, details: 'Username is already taken' };
const HASH_FORMAT = /^scrypt\$(\d+)\$(\d+)\$(\d+)\$[A-Za-z0-9+/]+={0,2}\$[A-Za-z0-9+/]+={0,2}$/;

describe.each(backendsOf(membersService))('MembersService $title', (backend) => {
  describe.runIf(!backend.skipReason)('', () => {
    let opened: OpenedStore<MembersStore> | undefined;
    let service: TestServer<MembersServiceClient> | undefined;

    async function start({
      log,
      ...handlerOptions
    }: MembersHandlersOptions & { log?: Logger } = {}): Promise<TestServer<MembersServiceClient>> {
      opened = await backend.open({ connectionLimit: 10 });
      service = await startTestServer(
        createServiceServer(membersService, {
          store: opened.store,
          ...(log ? { log } : {}),
          handlerOptions: { hashParameters: TEST_HASH_PARAMETERS, ...handlerOptions },
        }),
        MembersServiceClient,
      );
      return service;
    }
    const create = (request: CreateMemberRequest) =>
      call(service!.client, service!.client.createMember, request);
    const signIn = (request: SignInRequest) => call(service!.client, service!.client.signIn, request);
    const remove = (username?: string) =>
      call(service!.client, service!.client.deleteMember, username === undefined ? {} : { username });

    afterEach(async () => {
      await service?.close();
      await opened?.dispose();
      service = undefined;
      opened = undefined;
    });

    it('answers the book: delete unknown, create, sign in as userid 1', async () => {
      await start();
      await expect(remove('test_account')).resolves.toEqual({});
      await expect(create({ username: 'test_account', password: '1234' })).resolves.toEqual({ userid: 1 });
      await expect(signIn({ username: 'test_account', password: '1234' })).resolves.toEqual({ userid: 1 });
    });

    it('refuses password checks beyond its queue at once with RESOURCE_EXHAUSTED and answers the rest', async () => {
      await start({ hashParameters: SCRYPT_PARAMETERS, hashingLimits: { maxConcurrent: 1, maxWaiting: 2 } });
      await create({ username: 'busy', password: 'pw' });
      const outcomes = await Promise.allSettled(
        Array.from({ length: 8 }, () => signIn({ username: 'busy', password: 'pw' })),
      );
      const answered = outcomes.filter((outcome) => outcome.status === 'fulfilled');
      const refused = outcomes.flatMap((outcome) =>
        outcome.status === 'rejected' ? [[outcome.reason.code, outcome.reason.details]] : [],
      );
      expect(answered.map((outcome) => outcome.value)).toEqual([{ userid: 1 }, { userid: 1 }, { userid: 1 }]);
      expect(refused).toEqual(Array(5).fill([status.RESOURCE_EXHAUSTED, TOO_MANY_SIGN_INS]));
    });

    it('with the production scrypt parameters, stores only a salted hash and signs in', async () => {
      await start({ hashParameters: SCRYPT_PARAMETERS });
      await create({ username: 'alice', password: 'correct horse' });
      await create({ username: 'bob', password: 'correct horse' });
      await expect(signIn({ username: 'alice', password: 'correct horse' })).resolves.toEqual({ userid: 1 });
      const rows = await opened!.rawRows('SELECT * FROM members ORDER BY id');
      expect(rows.map((row) => Object.keys(row).sort())).toEqual([
        ['id', 'password_hash', 'username'],
        ['id', 'password_hash', 'username'],
      ]);
      const hashes = rows.map((row) => String(row.password_hash));
      for (const hash of hashes) {
        expect(hash).toMatch(HASH_FORMAT);
        expect(HASH_FORMAT.exec(hash)!.slice(1, 4).map(Number)).toEqual([
          SCRYPT_PARAMETERS.N,
          SCRYPT_PARAMETERS.r,
          SCRYPT_PARAMETERS.p,
        ]);
      }
      expect(hashes[0]).not.toBe(hashes[1]); // same password, different salt
      expect(JSON.stringify(rows)).not.toContain('correct horse');
    });

    it('a taken username is ALREADY_EXISTS, and the first account keeps its password', async () => {
      await start();
      await create({ username: 'test_account', password: 'first' });
      await expect(create({ username: 'test_account', password: 'second' })).rejects.toMatchObject(TAKEN);
      await expect(signIn({ username: 'test_account', password: 'first' })).resolves.toEqual({ userid: 1 });
      await expect(signIn({ username: 'test_account', password: 'second' })).rejects.toMatchObject(DENIED);
    });

    it('of 10 simultaneous creations of one username, exactly one wins', async () => {
      await start();
      const answers = await Promise.all(
        Array.from({ length: 10 }, (_, index) =>
          create({ username: 'race', password: `pw ${index}` }).then(
            () => 'created',
            (error) => `${error.code} ${error.details}`,
          ),
        ),
      );
      expect(answers.filter((answer) => answer === 'created')).toHaveLength(1);
      expect(answers.filter((answer) => answer === `${status.ALREADY_EXISTS} ${TAKEN.details}`)).toHaveLength(
        9,
      );
    });

    it('usernames are exact: case and surrounding spaces make different accounts', async () => {
      await start();
      const names = ['alice', 'Alice', 'alice ', ' alice'];
      for (const username of names) await create({ username, password: `pw of ${username}` });
      for (const [index, username] of names.entries()) {
        await expect(signIn({ username, password: `pw of ${username}` })).resolves.toEqual({
          userid: index + 1,
        });
      }
    });

    it('a wrong password and an unknown user get the same answer', async () => {
      await start();
      await create({ username: 'test_account', password: '1234' });
      const wrong = await signIn({ username: 'test_account', password: '12345' }).catch((error) => error);
      const unknown = await signIn({ username: 'nobody', password: '1234' }).catch((error) => error);
      expect({ code: wrong.code, details: wrong.details }).toEqual(DENIED);
      expect({ code: unknown.code, details: unknown.details }).toEqual(DENIED);
    });

    it('a deleted account cannot sign in, and its username is free again', async () => {
      await start();
      await create({ username: 'test_account', password: '1234' });
      await expect(remove('test_account')).resolves.toEqual({});
      await expect(signIn({ username: 'test_account', password: '1234' })).rejects.toMatchObject(DENIED);
      const { userid } = await create({ username: 'test_account', password: '5678' });
      await expect(signIn({ username: 'test_account', password: '5678' })).resolves.toEqual({ userid });
    });

    it.each([
      ['CreateMember without a username', 'create', { password: 'pw' }],
      ['CreateMember without a password', 'create', { username: 'u' }],
      ['CreateMember with an empty username', 'create', { username: '', password: 'pw' }],
      ['CreateMember with an empty password', 'create', { username: 'u', password: '' }],
      ['SignIn without a username', 'signIn', { password: 'pw' }],
      ['SignIn without a password', 'signIn', { username: 'u' }],
      ['SignIn with an empty password', 'signIn', { username: 'u', password: '' }],
      ['DeleteMember without a username', 'remove', {}],
      ['DeleteMember with an empty username', 'remove', { username: '' }],
    ] as const)('%s is "Invalid Parameters"', async (_label, method, request) => {
      await start();
      const attempt =
        method === 'create'
          ? create(request)
          : method === 'signIn'
            ? signIn(request)
            : remove('username' in request ? request.username : undefined);
      await expect(attempt).rejects.toMatchObject(INVALID);
    });

    it('username: 128 characters are kept (emoji count as one), 129 are refused everywhere', async () => {
      await start();
      const atBound = '😀'.repeat(MEMBERS_LIMITS.usernameCharacters);
      const over = `${atBound}a`;
      const tooLong = {
        code: status.INVALID_ARGUMENT,
        details: 'Invalid Parameters: username must be at most 128 characters',
      };
      await expect(create({ username: atBound, password: 'pw' })).resolves.toEqual({ userid: 1 });
      await expect(signIn({ username: atBound, password: 'pw' })).resolves.toEqual({ userid: 1 });
      await expect(create({ username: over, password: 'pw' })).rejects.toMatchObject(tooLong);
      await expect(signIn({ username: over, password: 'pw' })).rejects.toMatchObject(tooLong);
      await expect(remove(over)).rejects.toMatchObject(tooLong);
    });

    it('password: 1 KiB of UTF-8 is accepted, one byte more is refused', async () => {
      await start();
      const atBound = `${'비'.repeat(341)}a`; // 3 bytes each: 1023 + 1 = 1024 bytes
      expect(Buffer.byteLength(atBound)).toBe(MEMBERS_LIMITS.passwordBytes);
      const tooLong = {
        code: status.INVALID_ARGUMENT,
        details: 'Invalid Parameters: password must be at most 1 KiB (1024 bytes of UTF-8)',
      };
      await expect(create({ username: 'u', password: atBound })).resolves.toEqual({ userid: 1 });
      await expect(signIn({ username: 'u', password: atBound })).resolves.toEqual({ userid: 1 });
      await expect(create({ username: 'v', password: `${atBound}a` })).rejects.toMatchObject(tooLong);
      await expect(signIn({ username: 'u', password: `${atBound}a` })).rejects.toMatchObject(tooLong);
    });

    it('quotes, SQL, unicode and 10 KB of text work as usernames and passwords, verbatim', async () => {
      await start();
      for (const [index, text] of TRICKY_STRINGS.entries()) {
        const username = firstCharacters(text, 128);
        const password = firstCharacters(text, 300);
        await expect(create({ username, password })).resolves.toEqual({ userid: index + 1 });
      }
      for (const [index, text] of TRICKY_STRINGS.entries()) {
        const username = firstCharacters(text, 128);
        await expect(signIn({ username, password: firstCharacters(text, 300) })).resolves.toEqual({
          userid: index + 1,
        });
        await expect(signIn({ username, password: `${firstCharacters(text, 300)}x` })).rejects.toMatchObject(
          DENIED,
        );
      }
      // The injection attempts neither matched other rows nor dropped the table.
      expect(await opened!.rawRows('SELECT COUNT(*) AS count FROM members')).toEqual([
        { count: TRICKY_STRINGS.length },
      ]);
    });

    it('a password typed with composed or decomposed accents is the same password (NFKC)', async () => {
      await start();
      await create({ username: 'josé', password: 'caf\u00e9' });
      await expect(signIn({ username: 'josé', password: 'cafe\u0301' })).resolves.toEqual({ userid: 1 });
    });

    it('200 concurrent sign-ins over a pool of 10 all answer, right or wrong as they should', async () => {
      // This is about the database pool: the hashing queue is widened so that every call reaches
      // the store (the default queue refuses what is beyond 66 at once, as the test above shows).
      await start({ hashingLimits: { maxConcurrent: 2, maxWaiting: 200 } });
      await create({ username: 'test_account', password: '1234' });
      const answers = await Promise.all(
        Array.from({ length: 200 }, (_, index) =>
          signIn({ username: 'test_account', password: index % 2 === 0 ? '1234' : 'wrong' }).then(
            (response) => response.userid,
            (error) => `${error.code} ${error.details}`,
          ),
        ),
      );
      expect(answers.filter((answer) => answer === 1)).toHaveLength(100);
      expect(
        answers.filter((answer) => answer === `${status.UNAUTHENTICATED} Invalid password`),
      ).toHaveLength(100);
    });

    it('never writes a password to the log, even at trace level', async () => {
      const lines: string[] = [];
      const sink = new Writable({
        write(chunk, _encoding, done) {
          lines.push(String(chunk));
          done();
        },
      });
      await start({ log: pino({ level: 'trace' }, sink) });
      await create({ username: 'logged', password: 's3cret-pw' });
      await create({ username: 'logged', password: 's3cret-pw' }).catch(() => {});
      await signIn({ username: 'logged', password: 's3cret-pw-wrong' }).catch(() => {});
      await signIn({ username: 'logged', password: 's3cret-pw' });
      expect(lines.length).toBeGreaterThan(0);
      expect(lines.join('')).not.toContain('s3cret');
    });
  });
});

describe('MembersService given fields of the wrong wire type', () => {
  it('SignIn with a password sent as a number is "Invalid Parameters"', async () => {
    const opened = await backendsOf(membersService)[0]!.open();
    const service = await startTestServer(
      createServiceServer(membersService, { store: opened.store }),
      MembersServiceClient,
    );
    try {
      const body = Buffer.concat([wire.text(1, 'test_account'), wire.number(2, 1234)]);
      expect(await callRaw(service.address, '/shop.v1.MembersService/SignIn', body)).toEqual(INVALID);
    } finally {
      await service.close();
      await opened.dispose();
    }
  });
});
