import { createHash } from 'node:crypto';
import type { BinaryReader, BinaryWriter } from '@bufbuild/protobuf/wire';
import { type ServerUnaryCall, status } from '@grpc/grpc-js';
import {
  IDEMPOTENCY_KEY_METADATA,
  INVALID_IDEMPOTENCY_KEY,
  isValidIdempotencyKey,
} from '../../common/idempotency-key.js';
import { invalidArgument, ServiceError } from '../../common/service-error.js';

/**
 * Idempotent writes: a caller that sends `idempotency-key` metadata with a write gets the first
 * answer of that key again on every repeat, and the write happens once.
 *
 * Each service keeps a journal table of its own (`goods_idempotency`, ...) in its own store: key →
 * which request it was used for (the method and a SHA-256 fingerprint of the request) and the
 * outcome it got (the encoded response, or the status code and message of a refusal). The journal row
 * and the write are committed in the same transaction, so there is never a write without its row or
 * a row without its write. A repeat with the same request is answered from the row without writing;
 * the same key with another request is refused (FAILED_PRECONDITION, {@link KEY_REUSED}). Two calls
 * with one key at the same moment are serialized by the key's uniqueness inside the transaction: one
 * writes, the other waits for it and then answers its outcome.
 *
 * Only outcomes decided by the write are recorded (a success, or a refusal such as a taken username).
 * A call refused before it reaches the store (bad parameters, an overloaded password queue) or one
 * that fails with the store (UNAVAILABLE, INTERNAL) records nothing, so a retry runs again.
 *
 * A key is kept for {@link IDEMPOTENCY_RETENTION_MS}; after that it is as if it was never used. Expired
 * rows are ignored at once and deleted by a periodic sweep in batches (see the service server).
 */

/** How long a key is remembered: a day, so that a client retrying over hours still gets its answer. */
export const IDEMPOTENCY_RETENTION_MS = 24 * 60 * 60 * 1000;

/** How often a service deletes expired keys. */
export const IDEMPOTENCY_SWEEP_INTERVAL_MS = 10 * 60 * 1000;

/** Rows deleted per statement of a sweep, so that no sweep holds the table for long. */
export const IDEMPOTENCY_SWEEP_BATCH = 1_000;

/** Statements per sweep: a sweep deletes at most BATCH × this, and the next sweep goes on. */
export const IDEMPOTENCY_SWEEP_MAX_BATCHES = 20;

/** The refusal of a key used before for another request. */
export const KEY_REUSED = 'Idempotency-Key reused with a different request';

/** How a store keeps keys: for how long, by which clock (tests set both). */
export interface IdempotencyOptions {
  /** Default {@link IDEMPOTENCY_RETENTION_MS}. */
  retentionMs?: number;
  /** Milliseconds since the epoch; default Date.now. */
  now?: () => number;
}

/** A key and the request it comes with. */
export interface IdempotencyClaim {
  readonly key: string;
  /** The gRPC method, e.g. "CreateGoods". */
  readonly method: string;
  /** SHA-256 of the method and the request's canonical protobuf bytes. */
  readonly fingerprint: Buffer;
}

/** What a write answered, as recorded and replayed. */
export interface Outcome {
  /** OK, or the status of a refusal. */
  readonly code: status;
  /** The refusal's message; empty for OK. */
  readonly message: string;
  /** The encoded response message for OK; empty otherwise. */
  readonly response: Uint8Array;
}

/** A write to make at most once: the key it goes with, and how its result becomes an outcome. */
export interface Once<Result> {
  readonly claim: IdempotencyClaim;
  readonly outcomeOf: (result: Result) => Outcome;
}

/** A row of a journal table, as both stores read it. */
export interface JournalRow {
  readonly method: string;
  readonly fingerprint: Uint8Array;
  readonly code: number;
  readonly message: string;
  readonly response: Uint8Array;
  readonly createdAt: number;
}

/** A ts-proto message type: enough to record a response and replay it. */
export interface ResponseType<Response> {
  encode(message: Response, writer?: BinaryWriter): BinaryWriter;
  decode(input: BinaryReader | Uint8Array, length?: number): Response;
}

/** How one write method answers, so that the same words serve a fresh call and a replay. */
export interface WriteAnswer<Result, Response> {
  readonly responseType: ResponseType<Response>;
  /** The response a result gives, or the ServiceError it is refused with. */
  answer(result: Result): Response | ServiceError;
}

/**
 * The call's key with its request, or undefined without `idempotency-key` metadata. `requestBytes` is
 * what identifies the request: its canonical encoding (ts-proto writes fields in number order), or the
 * part of it that may be fingerprinted. A malformed or repeated key is INVALID_ARGUMENT.
 */
export function claimOf(
  call: Pick<ServerUnaryCall<unknown, unknown>, 'metadata'>,
  method: string,
  requestBytes: Uint8Array,
): IdempotencyClaim | undefined {
  const values = call.metadata.get(IDEMPOTENCY_KEY_METADATA);
  if (values.length === 0) return undefined;
  const [key] = values;
  if (values.length > 1 || typeof key !== 'string' || !isValidIdempotencyKey(key)) {
    throw invalidArgument(INVALID_IDEMPOTENCY_KEY);
  }
  const fingerprint = createHash('sha256').update(method).update('\0').update(requestBytes).digest();
  return { key, method, fingerprint };
}

/** A {@link Once} for a claim, recording what `spec` answers. */
export function once<Result, Response>(
  claim: IdempotencyClaim,
  spec: WriteAnswer<Result, Response>,
): Once<Result> {
  return {
    claim,
    outcomeOf(result) {
      const answer = spec.answer(result);
      if (answer instanceof ServiceError)
        return { code: answer.code, message: answer.message, response: EMPTY };
      return { code: status.OK, message: '', response: spec.responseType.encode(answer).finish() };
    },
  };
}

/** The answer of a fresh result: the response, or the refusal thrown. */
export function answerOf<Result, Response>(spec: WriteAnswer<Result, Response>, result: Result): Response {
  const answer = spec.answer(result);
  if (answer instanceof ServiceError) throw answer;
  return answer;
}

/** Answers an outcome again: the recorded response decoded, or the recorded refusal thrown. */
export function replay<Response>(outcome: Outcome, responseType: ResponseType<Response>): Response {
  if (outcome.code !== status.OK) throw new ServiceError(outcome.code, outcome.message);
  return responseType.decode(outcome.response);
}

/** Whether a row was written more than `retentionMs` before `now`. */
export function isExpired(row: Pick<JournalRow, 'createdAt'>, now: number, retentionMs: number): boolean {
  return row.createdAt + retentionMs <= now;
}

/** The outcome of a live row for a claim; FAILED_PRECONDITION when the key came with another request. */
export function outcomeFor(row: JournalRow, claim: IdempotencyClaim): Outcome {
  if (row.method !== claim.method || !claim.fingerprint.equals(row.fingerprint)) {
    throw new ServiceError(status.FAILED_PRECONDITION, KEY_REUSED);
  }
  return { code: row.code, message: row.message, response: row.response };
}

/** The retention and clock of a journal, with defaults. */
export function journalSettings(options: IdempotencyOptions = {}): Required<IdempotencyOptions> {
  return {
    retentionMs: options.retentionMs ?? IDEMPOTENCY_RETENTION_MS,
    now: options.now ?? Date.now,
  };
}

const EMPTY = new Uint8Array(0);
