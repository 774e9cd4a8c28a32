import { type ServerUnaryCall, status } from '@grpc/grpc-js';
import type { Logger } from '../../common/logger.js';
import { ServiceError } from '../../common/service-error.js';
import { unaryHandler } from '../../common/unary-handler.js';
import type { MembersServiceServer } from '../../gen/services.js';
import { requireText } from '../common/request-fields.js';
import { HashingLimiter, type HashingLimits, type RunOptions } from './hashing-limiter.js';
import type { MembersStore } from './members-store.js';
import {
  hashPassword,
  SCRYPT_PARAMETERS,
  type ScryptParameters,
  unmatchableHash,
  verifyPassword,
} from './password-hasher.js';

/** Bounds on an account's fields, checked before anything is hashed or stored. */
export const MEMBERS_LIMITS = {
  usernameCharacters: 128,
  passwordBytes: 1024,
} as const;

/** The book's answer to a failed sign-in, whether the username is unknown or the password wrong. */
export const INVALID_PASSWORD = 'Invalid password';

/** The answer to creating an account whose username exists. */
export const USERNAME_TAKEN = 'Username is already taken';

/** Options of {@link createMembersHandlers}. */
export interface MembersHandlersOptions {
  /** scrypt parameters of new hashes (default SCRYPT_PARAMETERS); tests of concurrency lower them. */
  hashParameters?: ScryptParameters;
  /** How many hashes run and wait at once (default DEFAULT_HASHING_LIMITS). */
  hashingLimits?: HashingLimits;
}

/**
 * The MembersService methods over a store. Passwords are hashed before they reach the store and are
 * never returned or logged. Sign-in answers an unknown username exactly as a wrong password, after
 * the same amount of hashing, so that neither the answer nor its timing tells which usernames exist.
 */
export function createMembersHandlers(
  store: MembersStore,
  log: Logger,
  options: MembersHandlersOptions = {},
): MembersServiceServer {
  const parameters = options.hashParameters ?? SCRYPT_PARAMETERS;
  const decoy = unmatchableHash(parameters);
  const hashing = new HashingLimiter(options.hashingLimits);
  const username = (value: string | undefined): string =>
    requireText(value, 'username', { maxCharacters: MEMBERS_LIMITS.usernameCharacters });
  const password = (value: string | undefined): string =>
    requireText(value, 'password', { maxBytes: MEMBERS_LIMITS.passwordBytes });

  return {
    createMember: unaryHandler(log, async (request, call) => {
      const name = username(request.username);
      const given = password(request.password);
      const hash = await hashing.run(() => hashPassword(given, parameters), callInfo(call));
      const result = await store.createMember(name, hash);
      if (!result.created) throw new ServiceError(status.ALREADY_EXISTS, USERNAME_TAKEN);
      return { userid: result.id };
    }),
    signIn: unaryHandler(log, async (request, call) => {
      const name = username(request.username);
      const given = password(request.password);
      const member = await store.findMember(name);
      const matches = await hashing.run(
        () => verifyPassword(given, member?.passwordHash ?? decoy),
        callInfo(call),
      );
      if (!member || !matches) throw new ServiceError(status.UNAUTHENTICATED, INVALID_PASSWORD);
      return { userid: member.id };
    }),
    deleteMember: unaryHandler(log, async (request) => {
      await store.deleteMember(username(request.username));
      return {};
    }),
  };
}

/** What the hashing queue needs to know of a call: whether its caller left, and its deadline. */
function callInfo(call: ServerUnaryCall<unknown, unknown>): RunOptions {
  const deadline = call.getDeadline();
  return {
    isCancelled: () => call.cancelled,
    deadline: deadline instanceof Date ? deadline.getTime() : deadline,
  };
}
