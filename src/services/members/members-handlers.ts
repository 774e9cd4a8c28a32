import { type ServerUnaryCall, status } from '@grpc/grpc-js';
import type { Logger } from '../../common/logger.js';
import { ServiceError } from '../../common/service-error.js';
import { unaryHandler } from '../../common/unary-handler.js';
import {
  CreateMemberRequest,
  CreateMemberResponse,
  DeleteMemberRequest,
  DeleteMemberResponse,
  type MembersServiceServer,
} from '../../gen/services.js';
import { answerOf, claimOf, once, replay, type WriteAnswer } from '../common/idempotency.js';
import { requireText } from '../common/request-fields.js';
import type { ServiceTelemetry } from '../common/service-telemetry.js';
import { HashingLimiter, type HashingLimits, type RunOptions } from './hashing-limiter.js';
import type { CreateMemberResult, MembersStore } from './members-store.js';
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

const MEMBER_CREATED: WriteAnswer<CreateMemberResult, CreateMemberResponse> = {
  responseType: CreateMemberResponse,
  answer: (result) =>
    result.created ? { userid: result.id } : new ServiceError(status.ALREADY_EXISTS, USERNAME_TAKEN),
};
const MEMBER_DELETED: WriteAnswer<void, DeleteMemberResponse> = {
  responseType: DeleteMemberResponse,
  answer: () => ({}),
};

/** Options of {@link createMembersHandlers}. */
export interface MembersHandlersOptions {
  /** scrypt parameters of new hashes (default SCRYPT_PARAMETERS); tests of concurrency lower them. */
  hashParameters?: ScryptParameters;
  /** How many hashes run and wait at once (default DEFAULT_HASHING_LIMITS). */
  hashingLimits?: HashingLimits;
  /** Where the hashing queue's depth is reported (service-telemetry.ts). */
  telemetry?: Pick<ServiceTelemetry, 'watchHashing'>;
}

/**
 * The MembersService methods over a store. Passwords are hashed before they reach the store and are
 * never returned or logged. Sign-in answers an unknown username exactly as a wrong password, after
 * the same amount of hashing, so that neither the answer nor its timing tells which usernames exist.
 *
 * A write that comes with `idempotency-key` metadata is made at most once per key (idempotency.ts).
 * CreateMember's fingerprint covers the username but not the password: a fast hash of the password
 * kept for a day would be a far weaker copy of it than its scrypt hash. So a repeat of a key with the
 * same username and another password gets the first answer, and the account keeps the first password.
 * A repeat is looked up before hashing, so it costs no hash.
 */
export function createMembersHandlers(
  store: MembersStore,
  log: Logger,
  options: MembersHandlersOptions = {},
): MembersServiceServer {
  const parameters = options.hashParameters ?? SCRYPT_PARAMETERS;
  const decoy = unmatchableHash(parameters);
  const hashing = new HashingLimiter(options.hashingLimits);
  options.telemetry?.watchHashing(hashing);
  const username = (value: string | undefined): string =>
    requireText(value, 'username', { maxCharacters: MEMBERS_LIMITS.usernameCharacters });
  const password = (value: string | undefined): string =>
    requireText(value, 'password', { maxBytes: MEMBERS_LIMITS.passwordBytes });

  return {
    createMember: unaryHandler(log, async (request, call) => {
      const name = username(request.username);
      const given = password(request.password);
      const claim = claimOf(call, 'CreateMember', CreateMemberRequest.encode({ username: name }).finish());
      const earlier = claim && (await store.recall(claim));
      if (earlier) return replay(earlier, CreateMemberResponse);
      const hash = await hashing.run(() => hashPassword(given, parameters), callInfo(call));
      if (!claim) return answerOf(MEMBER_CREATED, await store.createMember(name, hash));
      const outcome = await store.createMemberOnce(name, hash, once(claim, MEMBER_CREATED));
      return replay(outcome, CreateMemberResponse);
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
    deleteMember: unaryHandler(log, async (request, call) => {
      const name = username(request.username);
      const claim = claimOf(call, 'DeleteMember', DeleteMemberRequest.encode(request).finish());
      if (!claim) return answerOf(MEMBER_DELETED, await store.deleteMember(name));
      return replay(await store.deleteMemberOnce(name, once(claim, MEMBER_DELETED)), DeleteMemberResponse);
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
