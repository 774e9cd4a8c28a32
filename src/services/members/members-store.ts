import type { TraceSpan } from '../../common/tracing.js';
import type { Once, Outcome } from '../common/idempotency.js';
import type { ServiceStore } from '../common/service-store.js';

/** What sign-in needs to know about an account. */
export interface MemberCredentials {
  readonly id: number;
  /** The stored hash, Argon2id or an older scrypt one (see password-hasher.ts); never the password. */
  readonly passwordHash: string;
}

/** The outcome of adding an account: a taken username is an answer, not a failure of the store. */
export type CreateMemberResult =
  | { readonly created: true; readonly id: number }
  | { readonly created: false };

/**
 * The accounts' storage. Usernames are compared exactly: case, spaces and every byte count, the
 * same in SQLite and MySQL. Implementations throw only ServiceErrors (UNAVAILABLE when the database
 * cannot be used, INTERNAL otherwise).
 */
export interface MembersStore extends ServiceStore {
  /** Adds an account; resolves `{ created: false }` when the username is already taken. */
  createMember(
    username: string,
    passwordHash: string,
    parent: TraceSpan | undefined,
  ): Promise<CreateMemberResult>;
  /** The account of a username, if there is one. */
  findMember(username: string, parent: TraceSpan | undefined): Promise<MemberCredentials | undefined>;
  /** Deletes an account; an unknown username is not an error. */
  deleteMember(username: string, parent: TraceSpan | undefined): Promise<void>;
  /** `createMember` at most once per idempotency key, in one transaction with its key (idempotency.ts). */
  createMemberOnce(
    username: string,
    passwordHash: string,
    once: Once<CreateMemberResult>,
    parent: TraceSpan | undefined,
  ): Promise<Outcome>;
  /** `deleteMember` at most once per idempotency key, in one transaction with its key. */
  deleteMemberOnce(username: string, once: Once<void>, parent: TraceSpan | undefined): Promise<Outcome>;
  /**
   * Replaces an account's password hash, only if it is still `oldHash` (so that a password changed
   * meanwhile is not overwritten). Resolves whether it was replaced.
   */
  updatePasswordHash(
    id: number,
    oldHash: string,
    newHash: string,
    parent: TraceSpan | undefined,
  ): Promise<boolean>;
}
