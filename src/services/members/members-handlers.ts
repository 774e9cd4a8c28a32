import { type ServerUnaryCall, status } from '@grpc/grpc-js';
import type { Logger } from '../../common/logger.js';
import { requestLogFields, traceParentOf } from '../../common/request-context.js';
import { invalidArgument, ServiceError } from '../../common/service-error.js';
import type { TraceSpan } from '../../common/trace-span.js';
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
import { HashingLimiter, type HashingLimits, type RunOptions, tooManySignIns } from './hashing-limiter.js';
import type { CreateMemberResult, MemberCredentials, MembersStore } from './members-store.js';
import {
  ARGON2_PARAMETERS,
  type Argon2Parameters,
  hashPassword,
  needsRehash,
  UnreadableHashError,
  unmatchableHash,
  verifyPassword,
} from './password-hasher.js';
import { type SignInAttempt, SignInThrottle, type SignInThrottleLimits } from './sign-in-throttle.js';

/** Bounds on an account's fields, checked before anything is hashed or stored. */
export const MEMBERS_LIMITS = {
  usernameCharacters: 128,
  passwordBytes: 1024,
} as const;

/** The book's answer to a failed sign-in, whether the username is unknown or the password wrong. */
export const INVALID_PASSWORD = 'Invalid password';

/** The answer to a sign-in that comes before its account's wait is over (see SignInThrottle). */
export const TOO_MANY_FAILED_SIGN_INS = 'Too many failed sign-ins for this account';

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
  /** Argon2id parameters of new hashes (default ARGON2_PARAMETERS); tests that hash a lot lower them. */
  hashParameters?: Argon2Parameters;
  /** How many hashes run and wait at once (default DEFAULT_HASHING_LIMITS). */
  hashingLimits?: HashingLimits;
  /** How failed sign-ins in a row slow the next ones (default DEFAULT_SIGN_IN_THROTTLE). */
  signInThrottle?: SignInThrottleLimits;
  /** Where the hashing queue's depth and the sign-ins' counts are reported (service-telemetry.ts). */
  telemetry?: Pick<ServiceTelemetry, 'watchHashing' | 'watchSignIns'>;
}

/**
 * The MembersService methods over a store. Passwords are hashed before they reach the store and are
 * never returned or logged. Sign-in answers an unknown username exactly as a wrong password, after
 * the same amount of hashing (a decoy Argon2id hash with today's parameters), so that neither the
 * answer nor its timing tells which usernames exist. After a few failed sign-ins in a row, an
 * account's next ones must wait, longer after each failure (sign-in-throttle.ts): one sooner is
 * refused with RESOURCE_EXHAUSTED and the wait in the gRPC pushback trailer (the gateway's 429 and
 * Retry-After), without looking the account up or checking the password.
 *
 * A successful sign-in against an older hash (scrypt, or Argon2id weaker than today's parameters)
 * stores a new hash made with today's parameters, only if the stored one has not changed meanwhile.
 * That upgrade never fails the sign-in: if it cannot be made or stored, it is logged and tried again
 * at the next sign-in.
 *
 * A write that comes with `idempotency-key` metadata is made at most once per key (idempotency.ts).
 * CreateMember's fingerprint covers the username but not the password: a fast hash of the password
 * kept for a day would be a far weaker copy of it than its Argon2id hash. So a repeat of a key with
 * the same username and another password gets the first answer, and the account keeps the first
 * password. A repeat is looked up before hashing, so it costs no hash.
 */
export function createMembersHandlers(
  store: MembersStore,
  log: Logger,
  options: MembersHandlersOptions = {},
): MembersServiceServer {
  const parameters = options.hashParameters ?? ARGON2_PARAMETERS;
  const decoy = unmatchableHash(parameters);
  const hashing = new HashingLimiter(options.hashingLimits);
  options.telemetry?.watchHashing(hashing);
  const throttle = new SignInThrottle(options.signInThrottle, undefined, store);
  /** Passwords checked, by outcome: for metrics. */
  const checks = { succeeded: 0, failed: 0 };
  options.telemetry?.watchSignIns(throttle, checks);
  /**
   * A username in Unicode NFC (composed): "José" with é as one code point or as e and a combining
   * accent is one account, not two that look the same.
   */
  const username = (value: string | undefined): string => {
    // Normalising sorts each run of combining marks in quadratic time (a 1 MiB request held the
    // event loop for minutes): a spelling too long for any NFC name within the bound is refused
    // first. NFD never shortens a string and makes at most 4 code points of one (U+1F82), each at
    // most 2 UTF-16 units, so a name within the bound has no spelling longer than this.
    if (value !== undefined && value.length > 8 * MEMBERS_LIMITS.usernameCharacters) {
      throw invalidArgument(`username must be at most ${MEMBERS_LIMITS.usernameCharacters} characters`);
    }
    return requireText(value?.normalize('NFC'), 'username', {
      maxCharacters: MEMBERS_LIMITS.usernameCharacters,
    });
  };
  /**
   * The account stored under the exact spelling given, when that is not its NFC name: one stored
   * before usernames were normalised. Its owner, typing it as always, reaches it (not an NFC
   * look-alike made since), and nobody else can take that spelling. Asks the store only when the
   * name given is not in NFC.
   */
  const storedBefore = async (
    name: string,
    given: string | undefined,
    parent: TraceSpan | undefined,
  ): Promise<{ spelling: string; member: MemberCredentials } | undefined> => {
    if (given === undefined || given === name) return undefined;
    const member = await store.findMember(given, parent);
    return member && { spelling: given, member };
  };
  const password = (value: string | undefined): string =>
    requireText(value, 'password', { maxBytes: MEMBERS_LIMITS.passwordBytes });

  /**
   * Checks the password and, in the same hashing turn, makes the upgraded hash it may need.
   * `request` names the call's request in log lines (see requestLogFields).
   */
  async function check(given: string, member: MemberCredentials | undefined, request: object) {
    let matches: boolean;
    try {
      matches = await verifyPassword(given, member?.passwordHash ?? decoy);
    } catch (error) {
      if (error instanceof UnreadableHashError && member) {
        error.memberId = member.id;
        // Named in the message too: the log limiter groups lines by the start of it, and would
        // count a second corrupt row refused for the same reason without naming it. One cause per
        // corrupt row keeps each named (at most one line per row per interval).
        error.message = `member ${member.id}: ${error.message}`;
      }
      throw new ServiceError(status.INTERNAL, 'Internal error', { cause: error });
    }
    if (!matches || !member || !needsRehash(member.passwordHash, parameters)) return { matches };
    try {
      return { matches, upgraded: await hashPassword(given, parameters) };
    } catch (error) {
      log.warn({ err: error, memberId: member.id, ...request }, 'password hash not upgraded: hashing failed');
      return { matches };
    }
  }

  /**
   * Stores an upgraded hash; a failure is logged, never thrown (the next sign-in tries again).
   * `parent` is the call's span (see traceParentOf).
   */
  async function upgrade(
    member: MemberCredentials,
    upgraded: string,
    request: object,
    parent: TraceSpan | undefined,
  ): Promise<void> {
    const about = { memberId: member.id, ...request };
    try {
      const replaced = await store.updatePasswordHash(member.id, member.passwordHash, upgraded, parent);
      if (replaced) log.info({ event: 'password-rehashed', ...about }, 'password hash upgraded');
      else log.info(about, 'password hash not upgraded: it changed meanwhile');
    } catch (error) {
      log.warn({ err: error, ...about }, 'password hash not upgraded: the store failed');
    }
  }

  /**
   * A sign-in's outcome that the database did not take (see SignInThrottle): counted in this
   * process only, and the caller still gets the answer its password earned.
   */
  function unrecorded(error: unknown, outcome: 'failure' | 'success', request: object): void {
    const cause = (error as { cause?: unknown } | undefined)?.cause ?? error;
    log.warn(
      { event: 'sign-in-not-recorded', err: cause, ...request },
      `sign-in ${outcome} not recorded in the database; counted in this instance only`,
    );
  }

  /**
   * The throttle's attempts of a sign-in for each of `keys`, taken in the order given (always the
   * NFC name first, so that two sign-ins never wait for each other's second key); a refusal of any
   * gives back the others and is thrown, with its wait as the gRPC pushback.
   */
  async function throttleTurns(
    keys: readonly string[],
    call: RunOptions & { parent: TraceSpan | undefined },
  ): Promise<{ attempts: SignInAttempt[]; waited: boolean }> {
    const attempts: SignInAttempt[] = [];
    let waited = false;
    for (const key of keys) {
      let turn: Awaited<ReturnType<SignInThrottle['begin']>>;
      try {
        turn = await throttle.begin(key, call);
      } catch (error) {
        // The ledger could not be read (the database away): nothing was decided.
        for (const attempt of attempts) attempt.undecided();
        throw error;
      }
      if (turn.allowed) {
        attempts.push(turn.attempt);
        waited ||= turn.waited;
        continue;
      }
      for (const attempt of attempts) attempt.undecided();
      // Waited behind the account's other checks until the deadline was near: like a full queue.
      if (turn.reason === 'busy') throw tooManySignIns();
      throw new ServiceError(
        status.RESOURCE_EXHAUSTED,
        `${TOO_MANY_FAILED_SIGN_INS}: try again in ${Math.ceil(turn.waitMs / 1000)} s`,
        { retryAfterMs: turn.waitMs },
      );
    }
    return { attempts, waited };
  }

  return {
    createMember: unaryHandler(log, async (request, call) => {
      const name = username(request.username);
      const given = password(request.password);
      const parent = traceParentOf(call.metadata);
      const claim = claimOf(call, 'CreateMember', CreateMemberRequest.encode({ username: name }).finish());
      const earlier = claim && (await store.recall(claim, parent));
      if (earlier) return replay(earlier, CreateMemberResponse);
      if (await storedBefore(name, request.username, parent)) {
        throw new ServiceError(status.ALREADY_EXISTS, USERNAME_TAKEN);
      }
      const hash = await hashing.run(() => hashPassword(given, parameters), callInfo(call));
      if (!claim) return answerOf(MEMBER_CREATED, await store.createMember(name, hash, parent));
      const outcome = await store.createMemberOnce(name, hash, once(claim, MEMBER_CREATED), parent);
      return replay(outcome, CreateMemberResponse);
    }),
    signIn: unaryHandler(log, async (request, call) => {
      const name = username(request.username);
      const given = password(request.password);
      // Two keys when the spelling given is not NFC: the NFC name, which every spelling reaches, and
      // the spelling itself, the key of a legacy account stored decomposed (storedBefore). Both are
      // asked before the lookup, so that a refusal costs none.
      const keys =
        request.username !== undefined && request.username !== name ? [name, request.username] : [name];
      const parent = traceParentOf(call.metadata);
      const { attempts, waited } = await throttleTurns(keys, { ...callInfo(call), parent });
      try {
        const legacy = await storedBefore(name, request.username, parent);
        const member = legacy?.member ?? (await store.findMember(name, parent));
        // A failure counts under the NFC name whichever account it reached, so that whether that
        // name is throttled tells nobody whether a legacy account has the spelling; and under the
        // legacy account's own key when it has. A success forgets the account reached, so that a
        // legacy account's own sign-in does not forget the guesses at its NFC twin, nor the twin's
        // those at it (the NFC name too when no twin has it); and a spelling no account has is never
        // counted, so an owner who types the NFC name one day and a decomposed one the next starts
        // again after each success.
        const counted = legacy ? attempts : attempts.slice(0, 1);
        const reached = attempts[legacy ? 1 : 0]!;
        const named = requestLogFields(call.metadata);
        const { matches, upgraded } = await hashing.run(() => check(given, member, named), {
          ...callInfo(call),
          queuedBefore: waited,
        });
        if (!member || !matches) {
          checks.failed++;
          for (const attempt of counted) {
            await attempt.failed().catch((error: unknown) => unrecorded(error, 'failure', named));
          }
          throw new ServiceError(status.UNAUTHENTICATED, INVALID_PASSWORD);
        }
        checks.succeeded++;
        await reached.matched().catch((error: unknown) => unrecorded(error, 'success', named));
        // A legacy account's own failures counted under its NFC name too: with no NFC account to
        // guard there, its owner's success forgets them as well, or typos spread over days would
        // lock them out.
        if (legacy && !(await store.findMember(name, parent))) {
          await attempts[0]!.matched().catch((error: unknown) => unrecorded(error, 'success', named));
        }
        if (upgraded !== undefined) await upgrade(member, upgraded, named, parent);
        return { userid: member.id };
      } finally {
        // A lookup or check that failed, or a caller that left before its turn: nothing was decided.
        for (const attempt of attempts) attempt.undecided();
      }
    }),
    deleteMember: unaryHandler(log, async (request, call) => {
      const name = username(request.username);
      const parent = traceParentOf(call.metadata);
      const claim = claimOf(call, 'DeleteMember', DeleteMemberRequest.encode({ username: name }).finish());
      const spelling = (await storedBefore(name, request.username, parent))?.spelling ?? name;
      if (!claim) return answerOf(MEMBER_DELETED, await store.deleteMember(spelling, parent));
      return replay(
        await store.deleteMemberOnce(spelling, once(claim, MEMBER_DELETED), parent),
        DeleteMemberResponse,
      );
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
